"""users: a token version (a password change revokes tokens), and lowercase names

Tokens carry the user's token version; bumping it refuses every token issued before.
Names become case-insensitive: each is lowercased, except where two users differ only by
case; those are kept as they are, and logged, for an admin to sort out.

Revision ID: da85ee6ef2fd
Revises: b5e0c9a1d2f3
Create Date: 2026-12-15 09:00:00
"""

import logging
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "da85ee6ef2fd"
down_revision: str | None = "b5e0c9a1d2f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger("db.migrations")

_USERS = sa.table("app_user", sa.column("id", sa.Integer), sa.column("username", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(
            sa.Column("token_version", sa.Integer(), nullable=False, server_default="0")
        )
    _lowercase_usernames()


def _lowercase_usernames() -> None:
    connection = op.get_bind()
    by_lowercase: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
    for user_id, name in connection.execute(sa.select(_USERS.c.id, _USERS.c.username)):
        by_lowercase[name.lower()].append((user_id, name))
    for lowercase, users in by_lowercase.items():
        if len(users) > 1:
            names = ", ".join(sorted(name for _, name in users))
            logger.warning("Users differing only by case kept as they are: %s", names)
            continue
        user_id, name = users[0]
        if name != lowercase:
            connection.execute(
                _USERS.update().where(_USERS.c.id == user_id).values(username=lowercase)
            )


def downgrade() -> None:
    # Lowercased names stay lowercase: their former case is not kept anywhere.
    with op.batch_alter_table("app_user") as batch:
        batch.drop_column("token_version")
