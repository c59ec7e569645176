"""trace rows keep only the indexes the history's queries use

Every index is a b-tree insert on every traced request. ``model_requested`` and ``label``
were never searched; ``model_name`` and ``outcome`` are searched newest first, so each
becomes a pair with ``received_at`` (one index serves the filter and the order).

Revision ID: 3f9a7c1b2d40
Revises: 7e3b4e0e4fc8
Create Date: 2026-12-01 11:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3f9a7c1b2d40"
down_revision: str | None = "7e3b4e0e4fc8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROPPED = ("model_requested", "model_name", "outcome", "label")
_PAIRED = ("model_name", "outcome")


def upgrade() -> None:
    for column in _DROPPED:
        op.drop_index(f"ix_prediction_{column}", table_name="prediction")
    for column in _PAIRED:
        op.create_index(
            f"ix_prediction_{column}_received_at", "prediction", [column, "received_at"]
        )


def downgrade() -> None:
    for column in _PAIRED:
        op.drop_index(f"ix_prediction_{column}_received_at", table_name="prediction")
    for column in _DROPPED:
        op.create_index(f"ix_prediction_{column}", "prediction", [column])
