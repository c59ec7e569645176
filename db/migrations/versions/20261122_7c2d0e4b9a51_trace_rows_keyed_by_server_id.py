"""trace rows keyed by a server-made id; the client's request id is an indexed column

A client that reuses an X-Request-ID must not make two requests share (or overwrite)
one audit row.

Revision ID: 7c2d0e4b9a51
Revises: 531063623a1c
Create Date: 2026-11-22 11:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "7c2d0e4b9a51"
down_revision: str | None = "531063623a1c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STRING = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("prediction") as batch:
        batch.add_column(sa.Column("id", _STRING(length=64), nullable=True))
    # Rows written so far had unique request ids: they become the rows' ids.
    op.execute("UPDATE prediction SET id = request_id")
    with op.batch_alter_table("prediction", recreate="always") as batch:
        batch.alter_column("id", existing_type=_STRING(length=64), nullable=False)
        batch.drop_constraint("pk_prediction", type_="primary")
        batch.create_primary_key("pk_prediction", ["id"])
        batch.create_index(batch.f("ix_prediction_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("prediction", recreate="always") as batch:
        batch.drop_index(batch.f("ix_prediction_request_id"))
        batch.drop_constraint("pk_prediction", type_="primary")
        batch.create_primary_key("pk_prediction", ["request_id"])
        batch.drop_column("id")
