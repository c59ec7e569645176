"""Engines for SQLite (embedded, the default) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; a SQLite file's folder is created when missing."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=_to_json
        )
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        json_serializer=_to_json,
    )
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def _to_json(value: Any) -> str:
    # orjson: several times faster than json.dumps on every traced input and output.
    return orjson.dumps(value).decode()


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (history queries) run while the trace writer commits. NORMAL
    # synchronous: a commit survives a crash of this process (the client is answered
    # after it); only a power loss can undo the last commits. PostgreSQL for more.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def is_reachable(engine: Engine) -> bool:
    """True when a trivial query succeeds (the readiness probe)."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    return True
