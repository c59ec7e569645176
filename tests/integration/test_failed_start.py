"""A start that fails half-way stops what it had already started (issue 8).

The app starts its parts one after another: the trace writer (and, on a SQLite file, its WAL
checkpoint thread), the registry, the admin user, the registry's sync, the drift monitor.
When a later part fails, the earlier ones must not be left running: an app built again in
the same process (a test, a replica that retries) would find their threads and connections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import create_app
from api.settings import Settings
from db.engine import make_engine
from db.migrate import upgrade_to_head

_OURS = ("trace-writer", "wal-checkpoint")


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in _OURS and t.is_alive()]


def test_a_start_that_fails_after_the_trace_writer_leaves_none_of_its_threads(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    # A damaged database: at its head revision, but the users' table is gone. The admin
    # user is written after the trace writer started, and fails.
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE app_user"))
    engine.dispose()
    before = set(_our_threads())

    with pytest.raises(Exception, match="app_user"):
        with TestClient(create_app(make_settings())):
            pass

    for thread in set(_our_threads()) - before:
        thread.join(timeout=5)
    assert set(_our_threads()) - before == set()
