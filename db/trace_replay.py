"""At start: the trace log replayed into the (maybe fresh) database, compacted, then opened.

Replaying is idempotent: rows are keyed by their ``id``, and a row the database already has
is skipped, so every worker of a host may replay (one after the other) and a replay killed
halfway is simply done again at the next start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select

from db.host_lock import host_lock
from db.tables import Prediction
from db.trace_compaction import compact
from db.trace_log import TraceLog, decode_row, read_segment, segment_paths
from db.traces import TraceRow, insert_rows

logger = logging.getLogger(__name__)

_BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Replay:
    segments: int
    rows: int
    """Row records read (duplicates included)."""
    inserted: int
    """Rows the database did not have."""
    bad_records: int
    """Torn or damaged records skipped."""
    refused: int
    """Rows the database refused (each logged)."""


def open_trace_log(directory: Path, engine: Engine) -> TraceLog:
    """Replay ``directory`` into ``engine``'s database, compact it, and open it for appends."""
    with host_lock("trace-log", str(directory.resolve())):
        replay = replay_log(directory, engine)
        logger.info(
            "Trace log %s: %d rows replayed from %d segments, %d new to the database, "
            "%d torn or damaged records skipped, %d refused by the database",
            directory,
            replay.rows,
            replay.segments,
            replay.inserted,
            replay.bad_records,
            replay.refused,
        )
        try:
            compaction = compact(directory)
        except OSError as error:
            # Nothing is lost by not compacting: the next start tries again.
            logger.warning("Trace log compaction failed, segments kept: %s", error)
        else:
            if compaction.merged:
                logger.info(
                    "Trace log compacted: %d segments into %s (%d rows)",
                    compaction.merged,
                    compaction.output,
                    compaction.rows,
                )
    return TraceLog(directory)


def replay_log(directory: Path, engine: Engine) -> Replay:
    """Insert every row of the log that the database lacks (by id); the others are skipped."""
    before = _count(engine)
    paths = segment_paths(directory) if directory.is_dir() else []
    rows = bad = refused = 0
    for path in paths:
        try:
            segment = read_segment(path)
        except FileNotFoundError:
            continue  # compacted meanwhile by another node: its rows are in the new segment
        bad += segment.bad_records
        rows += len(segment.rows)
        payloads = [payload for _, payload in segment.rows]
        for start in range(0, len(payloads), _BATCH_ROWS):
            batch = payloads[start : start + _BATCH_ROWS]
            refused += _insert(engine, [decode_row(payload) for payload in batch])
    return Replay(len(paths), rows, _count(engine) - before, bad, refused)


def _insert(engine: Engine, rows: list[TraceRow]) -> int:
    """Insert ``rows``, one by one if the batch fails; how many the database refused."""
    try:
        insert_rows(engine, rows, skip_existing=True)
    except Exception:  # noqa: BLE001 - retried row by row, each failure logged
        refused = 0
        for row in rows:
            try:
                insert_rows(engine, [row], skip_existing=True)
            except Exception as error:  # noqa: BLE001 - one row must not stop the start
                # e.g. a log written beside SQLite, which does not enforce VARCHAR lengths,
                # replayed into PostgreSQL, which does.
                logger.error("Trace row %s from the log refused by the database: %s", row.id, error)
                refused += 1
        return refused
    return 0


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Prediction)).scalar_one())
