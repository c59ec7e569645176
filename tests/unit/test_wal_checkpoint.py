"""WAL checkpoints on their own thread: the loop's commits never checkpoint, the WAL stays
bounded, and a reader in the way cannot hold a commit up."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import db.wal_checkpoint
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.tables import Outcome, utc_now
from db.traces import LoopTraceWriter, TraceRow, _RowInsert

_INTERVAL = 0.02
_COMMITS, _ROWS_PER_COMMIT = 150, 20
_FEATURES = {f"feature_{index}": index * 1.5 for index in range(30)}


def migrated(tmp_path: Path, name: str) -> Engine:
    url = f"sqlite:///{tmp_path / name}"
    upgrade_to_head(url)
    return make_engine(url)


def batch(commit: int) -> list[TraceRow]:
    return [
        TraceRow(
            f"t{commit}-{row}",
            f"r{commit}-{row}",
            "rest",
            utc_now(),
            utc_now(),
            "attrition-logreg",
            "tabular",
            _FEATURES,
            Outcome.OK,
            model_name="attrition-logreg",
            model_version="1",
            output=[{"label": "No"}],
            label="No",
        )
        for row in range(_ROWS_PER_COMMIT)
    ]


async def write_through(writer: LoopTraceWriter) -> list[float]:
    """The workload, each commit's wait in seconds (paced, as requests come)."""
    waits = []
    for commit in range(_COMMITS):
        started = time.perf_counter()
        await asyncio.gather(*(writer.record(row) for row in batch(commit)))
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.002)
    return waits


def wal_bytes(engine: Engine) -> int:
    return Path(f"{engine.url.database}-wal").stat().st_size


def test_the_wal_stays_bounded_and_the_loop_commits_never_checkpoint(tmp_path: Path) -> None:
    # The same workload without any checkpoint: how large the WAL grows when nothing copies
    # it into the database (every commit's pages, end to end).
    unchecked = migrated(tmp_path, "unchecked.db")
    insert = _RowInsert(unchecked)
    connection = sqlite3.connect(str(unchecked.url.database))
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    for commit in range(_COMMITS):
        connection.executemany(insert.sql, insert.parameters(batch(commit)))  # type: ignore[arg-type]
        connection.commit()
    unbounded = wal_bytes(unchecked)
    connection.close()

    engine = migrated(tmp_path, "traces.db")
    writer = LoopTraceWriter(engine, checkpoint_interval=_INTERVAL)
    writer.start()
    try:
        asyncio.run(write_through(writer))
        assert writer._connection is not None
        cursor = writer._connection.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchall() == [(0,)]  # the commits on the loop leave it to the thread
        cursor.close()
        # The thread copied the WAL into the database again and again, and SQLite started
        # it over each time: it holds a few intervals' pages, not the whole run's.
        assert wal_bytes(engine) < unbounded / 4, (wal_bytes(engine), unbounded)
    finally:
        writer.close()
    engine.dispose()
    unchecked.dispose()


def test_a_reader_in_the_way_holds_no_commit_up(tmp_path: Path) -> None:
    engine = migrated(tmp_path, "traces.db")
    # Rows in the WAL, not yet in the database file, then a reader's snapshot of them, kept
    # open: no checkpoint can copy past it, and a RESTART would wait for it to end.
    early = sqlite3.connect(str(engine.url.database))
    early.execute("PRAGMA wal_autocheckpoint=0")
    insert = _RowInsert(engine)
    early.executemany(insert.sql, insert.parameters(batch(-1)))  # type: ignore[arg-type]
    early.commit()
    early.close()
    reader = sqlite3.connect(str(engine.url.database), check_same_thread=False)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM prediction").fetchall() == [(_ROWS_PER_COMMIT,)]
    writer = LoopTraceWriter(engine, checkpoint_interval=_INTERVAL)
    writer.start()
    assert writer._checkpointer is not None and writer._checkpointer._thread is not None
    thread = writer._checkpointer._thread
    try:
        waits = asyncio.run(write_through(writer))
    finally:
        writer.close()
        reader.rollback()
        reader.close()
    # Every commit went through, none waiting on the checkpoints (a checkpoint waiting for
    # the reader while holding the writer's lock would have made them wait seconds).
    assert max(waits) < 0.5, max(waits)
    assert not thread.is_alive()  # close() stopped it
    engine.dispose()


def test_checkpoints_that_keep_failing_give_way_to_sqlites_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(cursor: Any, mode: str) -> tuple[int, int, int]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(db.wal_checkpoint, "_run_checkpoint", failing)
    engine = migrated(tmp_path, "traces.db")
    writer = LoopTraceWriter(engine, checkpoint_interval=0.005)
    writer.start()
    try:

        async def until_given_up() -> int:
            for commit in range(2000):
                await asyncio.gather(*(writer.record(row) for row in batch(commit)))
                if writer._checkpointer is None:
                    break
                await asyncio.sleep(0.002)
            await asyncio.gather(*(writer.record(row) for row in batch(-1)))  # reconnects
            assert writer._connection is not None
            cursor = writer._connection.cursor()
            cursor.execute("PRAGMA wal_autocheckpoint")
            ((pages,),) = cursor.fetchall()
            cursor.close()
            return int(pages)

        # Without the thread, a WAL nobody copies would grow for ever: SQLite's default
        # (a checkpoint every 1,000 pages) is back on the connection that commits.
        assert asyncio.run(until_given_up()) == 1000
    finally:
        writer.close()
    engine.dispose()


class ScriptedCursor:
    """Answers each ``PRAGMA wal_checkpoint`` with the next (busy, frames, copied) given."""

    def __init__(self, results: list[tuple[int, int, int]]) -> None:
        self.results = results
        self.modes: list[str] = []

    def execute(self, sql: str) -> None:
        self.modes.append(sql.removeprefix("PRAGMA wal_checkpoint(").removesuffix(")"))

    def fetchall(self) -> list[tuple[int, int, int]]:
        return [self.results.pop(0)]

    def close(self) -> None:
        pass


class ScriptedConnection:
    def __init__(self, cursor: ScriptedCursor) -> None:
        self._cursor = cursor

    def cursor(self) -> ScriptedCursor:
        return self._cursor


@pytest.mark.parametrize(
    ("results", "modes"),
    [
        # All copied, then nothing new: done, nobody held up.
        ([(0, 40, 40), (0, 40, 40)], ["PASSIVE", "PASSIVE"]),
        # A reader's snapshot stops the copy: a RESTART would wait for it holding the
        # writer's lock (and so the event loop's commit); the round ends instead.
        ([(0, 40, 12)], ["PASSIVE"]),
        ([(0, 40, 40), (0, 55, 50)], ["PASSIVE", "PASSIVE"]),
        # Another connection's checkpoint under way.
        ([(1, 40, 0)], ["PASSIVE"]),
        # Commits keep racing the passes: one RESTART copies the last pages and has SQLite
        # start the WAL over.
        ([(0, 40, 40), (0, 48, 48), (0, 51, 51), (0, 52, 52)], ["PASSIVE"] * 3 + ["RESTART"]),
    ],
)
def test_a_round_restarts_the_wal_only_when_no_reader_is_in_the_way(
    results: list[tuple[int, int, int]], modes: list[str]
) -> None:
    cursor = ScriptedCursor(list(results))
    db.wal_checkpoint._checkpoint(ScriptedConnection(cursor))  # type: ignore[arg-type]
    assert cursor.modes == modes
