"""initial schema: predictions and users

Revision ID: 531063623a1c
Revises:
Create Date: 2026-11-22 10:47:04.161082
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "531063623a1c"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_STRING = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", _STRING(length=64), nullable=False),
        sa.Column("hashed_password", _STRING(length=255), nullable=False),
        sa.Column("role", _STRING(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
    )
    op.create_index(op.f("ix_app_user_username"), "app_user", ["username"], unique=True)
    op.create_table(
        "prediction",
        sa.Column("request_id", _STRING(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("model_requested", _STRING(length=128), nullable=False),
        sa.Column("model_name", _STRING(length=128), nullable=True),
        sa.Column("model_version", _STRING(length=64), nullable=True),
        sa.Column("is_fallback", sa.Boolean(), nullable=False),
        sa.Column("fallback_reason", _STRING(), nullable=True),
        sa.Column("outcome", _STRING(length=32), nullable=False),
        sa.Column("input_kind", _STRING(length=16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("input", _JSON, nullable=True),
        sa.Column("output", _JSON, nullable=True),
        sa.Column("label", _STRING(length=128), nullable=True),
        sa.Column("error", _STRING(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prediction")),
    )
    for column in ("label", "model_name", "model_requested", "outcome", "received_at"):
        op.create_index(op.f(f"ix_prediction_{column}"), "prediction", [column], unique=False)


def downgrade() -> None:
    op.drop_table("prediction")
    op.drop_table("app_user")
