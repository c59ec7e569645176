"""trace rows name the transport that took the request (native REST or OIP V2)

Revision ID: b5e0c9a1d2f3
Revises: 7c2d0e4b9a51
Create Date: 2026-12-01 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "b5e0c9a1d2f3"
down_revision: str | None = "7c2d0e4b9a51"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every row written before this revision came through the native routes.
    with op.batch_alter_table("prediction") as batch:
        batch.add_column(
            sa.Column(
                "protocol",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="rest",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction") as batch:
        batch.drop_column("protocol")
