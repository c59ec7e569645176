"""The trace writers: group commits, one whole row per request, failures reported to the waiters.

Every behaviour is proven for both writers (on the event loop, on a thread) and on both
databases (the ``database_url`` fixture: SQLite, and PostgreSQL when TEST_DATABASE_URL is set).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session, select

from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.tables import Outcome, Prediction, utc_now
from db.traces import (
    _LOOP_BUSY_TIMEOUT_MS,
    _MAX_FLUSH_WAITS,
    LoopTraceWriter,
    ThreadTraceWriter,
    TraceRow,
    TraceWriteError,
    TraceWriter,
    make_trace_writer,
)

# Only a guard against a hung writer thread: every wait below ends when a commit reports.
_GUARD_SECONDS = 30
_OUTPUT = [{"label": "No", "probabilities": {"No": 0.9, "Yes": 0.1}}]


@pytest.fixture(params=[LoopTraceWriter, ThreadTraceWriter])
def writer_class(request: pytest.FixtureRequest) -> type[TraceWriter]:
    cls: type[TraceWriter] = request.param
    return cls


@pytest.fixture
def unmigrated_engine(database_url: str) -> Iterator[Engine]:
    """An empty database: no table yet, so every INSERT fails."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def trace(trace_id: str, features: dict[str, object] | None = None, **fields: Any) -> TraceRow:
    values: dict[str, Any] = {
        "id": trace_id,
        "request_id": f"req-{trace_id}",
        "protocol": "rest",
        "received_at": utc_now(),
        "completed_at": utc_now(),
        "model_requested": "attrition-logreg",
        "input_kind": "tabular",
        "input": features or {"Age": 30},
        "outcome": Outcome.OK,
        "model_name": "attrition-logreg",
        "model_version": "1",
        "output": _OUTPUT,
        "label": "No",
        "latency_ms": 0.5,
    }
    values.update(fields)
    return TraceRow(**values)


def rows(engine: Engine) -> list[Prediction]:
    with Session(engine) as session:
        return list(session.exec(select(Prediction).order_by(Prediction.id)).all())


def count_commits(engine: Engine) -> Callable[[], int]:
    """Counts the transactions that wrote rows, as the database saw them.

    The writer commits on the driver's connection, where SQLAlchemy's "commit" event does
    not fire: SQLite reports each COMMIT to a trace callback; PostgreSQL stamps every row
    with the transaction that inserted it (``xmin``).
    """
    if engine.dialect.name != "sqlite":

        def distinct_transactions() -> int:
            with engine.connect() as connection:
                query = text("SELECT count(DISTINCT xmin::text) FROM prediction")
                return int(connection.execute(query).scalar_one())

        return distinct_transactions
    commits: list[str] = []

    def trace_commits(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.set_trace_callback(
            lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
        )

    event.listen(engine, "connect", trace_commits)
    return lambda: len(commits)


def count_checkouts(engine: Engine) -> list[int]:
    """Every connection taken from the pool (read before the test reads rows itself)."""
    checkouts: list[int] = []
    event.listen(engine, "checkout", lambda *_args: checkouts.append(1))
    return checkouts


async def committed(future: Awaitable[None]) -> None:
    await asyncio.wait_for(future, _GUARD_SECONDS)


async def outcome(future: Awaitable[None]) -> str:
    try:
        await committed(future)
    except TraceWriteError:
        return "failed"
    return "ok"


def as_utc(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes (in UTC, as written); PostgreSQL aware ones.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_make_trace_writer_suits_the_database(engine: Engine) -> None:
    expected = LoopTraceWriter if engine.dialect.name == "sqlite" else ThreadTraceWriter
    assert type(make_trace_writer(engine)) is expected


def test_record_many_concurrent_requests_share_few_commits(
    engine: Engine, writer_class: type[TraceWriter]
) -> None:
    commits = count_commits(engine)
    writer = writer_class(engine)
    writer.start()

    async def serve(index: int) -> None:
        await asyncio.sleep(0)  # the requests end interleaved, as on a busy server
        await committed(writer.record(trace(f"r{index:03d}", {"Age": index})))

    async def serve_all() -> None:
        await asyncio.gather(*(serve(index) for index in range(200)))

    asyncio.run(serve_all())
    writer.close()
    assert 0 < commits() < 200 / 4, f"{commits()} commits for 200 requests"
    stored = rows(engine)
    assert [row.id for row in stored] == [f"r{index:03d}" for index in range(200)]
    assert stored[7].request_id == "req-r007"
    assert all(row.outcome == Outcome.OK and row.label == "No" for row in stored)
    assert all(row.protocol == "rest" and row.completed_at is not None for row in stored)
    assert stored[7].input == {"Age": 7}
    assert stored[7].output == _OUTPUT


def test_the_loop_writer_commits_a_lone_row_at_the_next_turn_of_the_loop(engine: Engine) -> None:
    writer = LoopTraceWriter(engine)
    writer.start()

    async def lone() -> bool:
        future = writer.record(trace("lone"))
        await asyncio.sleep(0)  # one turn
        return future.done()

    assert asyncio.run(lone())
    writer.close()
    assert [row.id for row in rows(engine)] == ["lone"]


def test_the_loop_writer_waits_for_rows_still_coming_and_commits_them_together(
    engine: Engine,
) -> None:
    commits = count_commits(engine)
    writer = LoopTraceWriter(engine)
    writer.start()

    async def arriving() -> list[bool]:
        first = [writer.record(trace("a")), writer.record(trace("b"))]  # one turn
        await asyncio.sleep(0)
        late = writer.record(trace("c"))  # the next turn: the batch is still growing
        await asyncio.sleep(0)
        done_before = [future.done() for future in first]
        await committed(asyncio.gather(*first, late))
        return done_before

    assert asyncio.run(arriving()) == [False, False]
    writer.close()
    assert commits() == 1
    assert [row.id for row in rows(engine)] == ["a", "b", "c"]


def test_the_loop_writer_waits_a_few_turns_at_most_while_rows_keep_coming(engine: Engine) -> None:
    writer = LoopTraceWriter(engine)
    writer.start()

    async def endless() -> int:
        futures = [writer.record(trace(f"t0-{k}")) for k in range(2)]
        turns = 0
        while not futures[0].done():
            await asyncio.sleep(0)
            turns += 1
            futures += [writer.record(trace(f"t{turns}-{k}")) for k in range(2)]
        await committed(asyncio.gather(*futures))
        return turns

    turns = asyncio.run(endless())
    writer.close()
    assert turns == _MAX_FLUSH_WAITS + 1  # it waited, and not for ever
    assert len(rows(engine)) == 2 * (turns + 1)


def test_record_stores_the_row_whole(engine: Engine, writer_class: type[TraceWriter]) -> None:
    received = utc_now()
    row = trace(
        "whole",
        {"Age": 41, "Department": "Sales", "nested": {"a": [1, 2.5, None]}},
        request_id="client-chosen-id",
        protocol="v2",
        received_at=received,
        completed_at=received + timedelta(milliseconds=12),
        model_requested="attrition-logreg@2",
        outcome=Outcome.ERROR,
        rows=3,
        model_version="2",
        is_fallback=True,
        fallback_reason="attrition-logreg@2 failed: boom",
        output=None,
        label=None,
        error="the fallback failed too",
        latency_ms=12.25,
    )
    writer = writer_class(engine)
    writer.start()

    async def request() -> None:
        await committed(writer.record(row))

    asyncio.run(request())
    writer.close()
    [stored] = rows(engine)
    for field in dataclasses.fields(TraceRow):
        expected, got = getattr(row, field.name), getattr(stored, field.name)
        if isinstance(expected, datetime):
            expected, got = as_utc(expected), as_utc(got)
        assert got == expected, f"{field.name}: stored {got!r}, recorded {expected!r}"


def test_record_fails_every_request_while_no_row_can_be_written_then_recovers(
    database_url: str, unmigrated_engine: Engine, writer_class: type[TraceWriter]
) -> None:
    writer = writer_class(unmigrated_engine)
    writer.start()

    async def requests() -> list[str]:
        futures = [writer.record(trace(name)) for name in ["lost", "also-lost"]]
        results = list(await asyncio.gather(*(outcome(future) for future in futures)))
        upgrade_to_head(database_url)  # the database can store rows again
        results.append(await outcome(writer.record(trace("stored"))))
        return results

    assert asyncio.run(requests()) == ["failed", "failed", "ok"]
    writer.close()
    assert [row.id for row in rows(unmigrated_engine)] == ["stored"]


def test_record_one_bad_row_fails_only_its_own_request(
    engine: Engine, writer_class: type[TraceWriter]
) -> None:
    if engine.dialect.name == "sqlite":
        # A failed INSERT whose statement stayed open kept SQLite's write lock, and the rows
        # after it failed with "database is locked" after the busy timeout: a short one here,
        # so that a regression fails in a second, not 30.
        event.listen(
            engine,
            "connect",
            lambda dbapi_connection, _record: dbapi_connection.execute("PRAGMA busy_timeout=1000"),
        )
    writer = writer_class(engine)
    writer.start()

    async def batch() -> list[str]:
        assert await outcome(writer.record(trace("dup"))) == "ok"
        # The same id again violates the primary key: only that request may fail.
        again = trace("dup", request_id="req-dup-again")
        futures = [writer.record(row) for row in [trace("a"), again, trace("b"), trace("c")]]
        return list(await asyncio.gather(*(outcome(future) for future in futures)))

    assert asyncio.run(batch()) == ["ok", "failed", "ok", "ok"]
    writer.close()
    stored = rows(engine)
    assert [row.id for row in stored] == ["a", "b", "c", "dup"]
    assert stored[-1].request_id == "req-dup", "the bad row must not overwrite the first"


def test_close_writes_what_is_queued(engine: Engine, writer_class: type[TraceWriter]) -> None:
    writer = writer_class(engine)
    writer.start()

    async def shut_down_with_rows_queued() -> list[str]:
        futures = [writer.record(trace(name)) for name in ["queued-1", "queued-2"]]
        writer.close()  # before the writer had its turn to commit them
        stored = [row.id for row in rows(engine)]  # written by close(), not by a later turn
        for future in futures:
            await committed(future)
        return stored

    assert asyncio.run(shut_down_with_rows_queued()) == ["queued-1", "queued-2"]


def test_record_keeps_one_connection_and_reconnects_after_it_breaks(
    engine: Engine, writer_class: type[TraceWriter]
) -> None:
    checkouts = count_checkouts(engine)
    connections: list[Any] = []
    event.listen(
        engine, "connect", lambda dbapi_connection, _record: connections.append(dbapi_connection)
    )
    writer = writer_class(engine)
    writer.start()
    started = len(checkouts)  # the SQLite loop writer's WAL checkpoint thread has its own

    async def requests() -> list[str]:
        results = [await outcome(writer.record(trace(f"before-{index}"))) for index in range(3)]
        assert len(checkouts) - started == 1, "one connection for every batch"
        connections[-1].close()  # the database connection breaks under the writer
        results.append(await outcome(writer.record(trace("after"))))
        results.append(await outcome(writer.record(trace("after-again"))))
        return results

    assert asyncio.run(requests()) == ["ok"] * 5
    writer.close()
    assert len(checkouts) - started == 2, "a new connection after the broken one, then kept"
    assert [row.id for row in rows(engine)] == [
        "after",
        "after-again",
        "before-0",
        "before-1",
        "before-2",
    ]


def test_a_locked_sqlite_database_fails_a_batch_at_once_not_row_by_row(
    tmp_path: Path,
) -> None:
    # Another process holding SQLite's write lock made each row of a failed batch wait the
    # whole lock timeout again, on the event loop: 20 rows froze the server for 42 s.
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    writer = LoopTraceWriter(engine)
    writer.start()
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)

    async def requests() -> tuple[list[str], float]:
        assert await outcome(writer.record(trace("warm"))) == "ok"  # a kept connection
        holder.execute("BEGIN IMMEDIATE")  # someone else holds the write lock
        started = time.monotonic()
        results = await asyncio.gather(
            *(outcome(writer.record(trace(f"locked-{index}"))) for index in range(10))
        )
        return list(results), time.monotonic() - started

    results, seconds = asyncio.run(requests())
    holder.execute("ROLLBACK")
    holder.close()
    writer.close()
    engine.dispose()
    assert results == ["failed"] * 10
    # One lock wait, not one per row (nor a second on a new connection).
    assert seconds < 2 * _LOOP_BUSY_TIMEOUT_MS / 1000, f"{seconds:.1f} s for one batch"
