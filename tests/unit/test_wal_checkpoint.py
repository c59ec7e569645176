"""WAL checkpoints on their own thread: the loop's commits never checkpoint, the WAL stays
bounded, and a reader in the way cannot hold a commit up."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Engine

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
    finally:
        writer.close()
    # The thread copied the WAL into the database again and again, and SQLite started it
    # over each time: it holds a few intervals' pages, not the whole run's.
    assert wal_bytes(engine) < unbounded / 4, (wal_bytes(engine), unbounded)
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
    try:
        waits = asyncio.run(write_through(writer))
    finally:
        writer.close()
        reader.rollback()
        reader.close()
    # A RESTART that waited for the reader would hold the writer lock: the loop's commit
    # would wait out its busy timeout (2 s) and fail. It gives up after a few ms instead.
    assert max(waits) < 0.5, max(waits)
    assert [t.name for t in threading.enumerate() if t.name == "wal-checkpoint"] == []
    engine.dispose()
