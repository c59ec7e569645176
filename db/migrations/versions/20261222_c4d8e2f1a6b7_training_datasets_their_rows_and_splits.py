"""training data sets in the database: versions, their rows, and their held-out splits

``python -m api.manage load-dataset NAME`` stores a version (content hashed, so loading it again
finds the same version), training reads it back by name and version, and records the held-out
split it evaluated on, so every model of the task is trained and compared on the same rows.

Revision ID: c4d8e2f1a6b7
Revises: 3f9a7c1b2d40
Create Date: 2026-12-22 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4d8e2f1a6b7"
down_revision: str | None = "3f9a7c1b2d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_STRING = sqlmodel.sql.sqltypes.AutoString


def _dataset_id() -> sa.Column[int]:
    return sa.Column("dataset_id", sa.Integer(), nullable=False)


def _dataset_foreign_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["dataset_id"],
        ["dataset.id"],
        name=op.f(f"fk_{table}_dataset_id_dataset"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _STRING(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", _STRING(), nullable=False),
        sa.Column("sha256", _STRING(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("columns", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("name", "sha256", name="uq_dataset_name_sha256"),
        sa.UniqueConstraint("name", "version", name="uq_dataset_name_version"),
    )
    op.create_table(
        "dataset_row",
        _dataset_id(),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("data", _JSON, nullable=False),
        _dataset_foreign_key("dataset_row"),
        sa.PrimaryKeyConstraint("dataset_id", "row_index", name=op.f("pk_dataset_row")),
    )
    op.create_table(
        "dataset_split",
        _dataset_id(),
        sa.Column("name", _STRING(length=64), nullable=False),
        sa.Column("method", _STRING(), nullable=False),
        sa.Column("train_rows", _JSON, nullable=False),
        sa.Column("heldout_rows", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _dataset_foreign_key("dataset_split"),
        sa.PrimaryKeyConstraint("dataset_id", "name", name=op.f("pk_dataset_split")),
    )


def downgrade() -> None:
    op.drop_table("dataset_split")
    op.drop_table("dataset_row")
    op.drop_table("dataset")
