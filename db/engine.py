"""Engines for SQLite (embedded, the default) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

_MAX_UNSERIALISABLE_CHARS = 2000
_CONNECT_TIMEOUT_SECONDS = 5
_POOL_TIMEOUT_SECONDS = 10


def make_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; a SQLite file's folder is created when missing."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            pool_timeout=_POOL_TIMEOUT_SECONDS,
            json_serializer=_to_jsonb,
            # A server that does not answer must not hold a connection attempt for minutes.
            connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS},
        )
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        json_serializer=to_json,
    )
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def to_json(value: Any) -> str:
    # orjson: several times faster than json.dumps on every traced input and output.
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # e.g. JSON nested deeper than orjson writes (it reads deeper): the row must still
        # be written, so the refused input is kept as capped text.
        return orjson.dumps({"unserialisable": repr(value)[:_MAX_UNSERIALISABLE_CHARS]}).decode()


def _to_jsonb(value: Any) -> str:
    # PostgreSQL's jsonb cannot hold U+0000, which JSON allows; an audit row must still be
    # written, so the rare input that has one is stored with U+FFFD in its place.
    text = to_json(value)
    return to_json(_without_nul(value)) if "\\u0000" in text else text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


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
