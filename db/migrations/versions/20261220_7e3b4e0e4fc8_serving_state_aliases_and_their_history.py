"""serving state in the database: default and fallback models, aliases, and every change

What every worker and replica serves lives here, not in a process: the default and fallback
models (one row, seeded from DEFAULT_MODEL and FALLBACK_MODEL at the first start), each
model's aliases, and the history of changes (who, when, from, to), which is also how load,
unload and reload reach every worker.

Revision ID: 7e3b4e0e4fc8
Revises: da85ee6ef2fd
Create Date: 2026-12-20 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7e3b4e0e4fc8"
down_revision: str | None = "da85ee6ef2fd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_STRING = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "serving_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("default_model", _STRING(length=256), nullable=True),
        sa.Column("fallback_models", _JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serving_config")),
    )
    op.create_table(
        "model_alias",
        sa.Column("model_name", _STRING(length=128), nullable=False),
        sa.Column("alias", _STRING(length=64), nullable=False),
        sa.Column("version", _STRING(length=64), nullable=False),
        sa.Column("updated_by", _STRING(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "alias", name=op.f("pk_model_alias")),
    )
    op.create_table(
        "registry_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", _STRING(length=64), nullable=False),
        sa.Column("action", _STRING(length=32), nullable=False),
        sa.Column("model_name", _STRING(length=128), nullable=True),
        sa.Column("alias", _STRING(length=64), nullable=True),
        sa.Column("from_version", _STRING(), nullable=True),
        sa.Column("to_version", _STRING(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_change")),
    )
    op.create_index(
        op.f("ix_registry_change_model_name"), "registry_change", ["model_name"], unique=False
    )


def downgrade() -> None:
    op.drop_table("registry_change")
    op.drop_table("model_alias")
    op.drop_table("serving_config")
