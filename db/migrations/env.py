"""Alembic environment: migrates the database named by the config or DATABASE_URL."""

import os

from alembic import context
from sqlalchemy import text

from db.engine import make_engine
from db.tables import metadata

# NOTE: any fixed 64-bit number; it serialises migrations across hosts on PostgreSQL.
_POSTGRES_MIGRATION_LOCK = 7_346_210_019


def _database_url() -> str:
    configured = context.config.get_main_option("sqlalchemy.url")
    return configured or os.environ.get("DATABASE_URL", "sqlite:///data/traces.db")


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_database_url())
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_lock({_POSTGRES_MIGRATION_LOCK})"))
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
