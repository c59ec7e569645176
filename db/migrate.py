"""Bring a database to the latest schema with Alembic, once even with several workers.

A database already at the head revision, every start but the first, is told by one query
against the revision that the migration scripts name as their head, without importing Alembic
(a tenth of the API's start-up); anything else (a new, older, newer or branched database, or a
script that cannot be read plainly) goes to ``alembic upgrade head`` as before.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy

from db.engine import make_engine
from db.host_lock import host_lock

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^revision: str = "([0-9a-z_]+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision: str \| None = (None|"([0-9a-z_]+)")$', re.MULTILINE)
_NO_DEPENDENCIES = re.compile(r"^(branch_labels|depends_on): .* = None$", re.MULTILINE)


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    # NOTE: '%' is ConfigParser's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration; workers starting together wait for each other."""
    with host_lock("migrate", database_url):
        if not is_at_head(database_url):
            from alembic import command

            command.upgrade(alembic_config(database_url), "head")
    logger.info("Database schema is up to date")


def script_head() -> str | None:
    """The one head revision of the migration scripts, read as text; None when the scripts
    are not one plain chain (a branch, a merge, labels, dependencies) or cannot be read so."""
    revisions: dict[str, str | None] = {}
    for script in sorted((_MIGRATIONS_DIR / "versions").glob("*.py")):
        text = script.read_text()
        revision, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if len(revision) != 1 or len(down) != 1 or len(_NO_DEPENDENCIES.findall(text)) != 2:
            return None
        revisions[revision[0]] = down[0][1] or None
    heads = set(revisions) - set(revisions.values())
    roots = [revision for revision, down in revisions.items() if down is None]
    if len(heads) != 1 or len(roots) != 1 or len(set(revisions.values())) != len(revisions):
        return None
    return heads.pop()


def is_at_head(database_url: str) -> bool:
    """True when the database's one recorded revision is the scripts' head; False when it
    is not, or when that cannot be told without Alembic (no such table, no database yet)."""
    head = script_head()
    if head is None:
        return False
    engine = make_engine(database_url)  # the one the migrations would use (db/migrations/env.py)
    try:
        with engine.connect() as connection:
            # Asked first, so that no statement fails: a new database has no such table.
            if not sqlalchemy.inspect(connection).has_table("alembic_version"):
                return False
            versions = connection.execute(
                sqlalchemy.text("SELECT version_num FROM alembic_version")
            ).scalars()
            return list(versions) == [head]
    except sqlalchemy.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()
