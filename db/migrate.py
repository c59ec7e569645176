"""Bring a database to the latest schema with Alembic, once even with several workers."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

logger = logging.getLogger(__name__)

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    # NOTE: '%' is ConfigParser's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration; workers starting together wait for each other."""
    lock_name = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"futurisys-migrate-{lock_name}.lock"
    with lock_path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            command.upgrade(alembic_config(database_url), "head")
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    logger.info("Database schema is up to date")
