"""Bring a database to the latest schema with Alembic, once even with several workers."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from db.host_lock import host_lock

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
    with host_lock("migrate", database_url):
        command.upgrade(alembic_config(database_url), "head")
    logger.info("Database schema is up to date")
