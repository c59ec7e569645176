"""Alembic environment: migrates the database named by the config or DATABASE_URL.

Every pending migration runs in one transaction, on SQLite too: a process killed halfway
(kill -9, a crash, a lost host) leaves the database as it was, and the next start migrates
it again. Migrators take turns: on PostgreSQL an advisory lock, so that several hosts
starting at once do not race; on SQLite the write lock, taken when the transaction begins.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine, event, text

from db.defaults import DEFAULT_DATABASE_URL
from db.engine import make_engine
from db.tables import metadata

# NOTE: any fixed 64-bit number; it serialises migrations across hosts on PostgreSQL.
_POSTGRES_MIGRATION_LOCK = 7_346_210_019


def _database_url() -> str:
    configured = context.config.get_main_option("sqlalchemy.url")
    return configured or os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _make_sqlite_ddl_transactional(engine: Engine) -> None:
    """SQLite can roll DDL back, but Python's driver runs it outside any transaction.

    pysqlite opens a transaction only before INSERT, UPDATE and DELETE, so each CREATE,
    ALTER and DROP committed on its own: a migration killed halfway left tables that the
    next attempt failed to create again. This is SQLAlchemy's documented recipe: the driver
    stops opening transactions and every one begins with an explicit BEGIN.
    """

    def no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    def begin_immediate(connection: Connection) -> None:
        # IMMEDIATE: the write lock from the start, so that a second migrator waits here
        # (busy_timeout) instead of reading the old revision and failing on its first write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", no_driver_transactions)
    event.listen(engine, "begin", begin_immediate)


@contextmanager
def _one_migrator_at_a_time(connection: Connection) -> Iterator[None]:
    if connection.dialect.name == "postgresql":
        # Session-level: held across the migrations' own transaction, and released when
        # the connection closes (engine.dispose), even when a migration fails.
        connection.execute(text(f"SELECT pg_advisory_lock({_POSTGRES_MIGRATION_LOCK})"))
        # Ends the transaction the SELECT began: Alembic must begin (and commit) its own.
        connection.commit()
    yield


def run_migrations_online() -> None:
    engine = make_engine(_database_url())
    is_sqlite = engine.dialect.name == "sqlite"
    if is_sqlite:
        _make_sqlite_ddl_transactional(engine)
    try:
        with engine.connect() as connection, _one_migrator_at_a_time(connection):
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=is_sqlite,
                # Alembic assumes SQLite's DDL is not transactional; with the recipe it is.
                transactional_ddl=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
