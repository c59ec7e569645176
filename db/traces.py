"""The trace writer: every prediction's row, written in group commits.

A request records its input before the model runs and its result after, then waits until
the commit that holds its row. One writer thread drains everything queued meanwhile into
a single transaction, so durability costs one commit per batch, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, update

from db.tables import Outcome, Prediction

logger = logging.getLogger(__name__)

_TABLE = Prediction.__table__  # type: ignore[attr-defined]
_MAX_BATCH = 1024


@dataclass(frozen=True, slots=True)
class TraceStart:
    """What was asked, recorded before any model runs."""

    id: str
    """Made by the server, unique per request: the row's key."""
    request_id: str
    received_at: datetime
    model_requested: str
    input_kind: str
    input: Any
    rows: int = 1


@dataclass(frozen=True, slots=True)
class TraceEnd:
    """How the request ended: who served it and what it answered, or the error."""

    id: str
    completed_at: datetime
    outcome: Outcome
    model_name: str | None = None
    model_version: str | None = None
    is_fallback: bool = False
    fallback_reason: str | None = None
    output: Any = None
    label: str | None = None
    error: str | None = None
    latency_ms: float | None = None


class TraceWriteError(Exception):
    """The trace could not be committed: the prediction must not be acknowledged."""


@dataclass(slots=True)
class _PendingEnd:
    end: TraceEnd
    future: asyncio.Future[None]

    @property
    def id(self) -> str:
        return self.end.id


_STOP = object()


class TraceWriter:
    """Owns the thread that writes prediction rows; use ``start()`` and ``close()``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trace-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def record_start(self, start: TraceStart) -> None:
        """Queue the input's row; it is committed with the next batch."""
        self._queue.put(start)

    def record_end(self, end: TraceEnd) -> asyncio.Future[None]:
        """Queue the result; the future resolves once the row is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put(_PendingEnd(end, future))
        return future

    # --- writer thread -------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in batch)
            self._write_batch([item for item in batch if item is not _STOP])

    def _write_batch(self, batch: list[Any]) -> None:
        if not batch:
            return
        try:
            self._commit(batch)
        except Exception:  # noqa: BLE001 - one bad row must not fail the others
            logger.exception("Group commit of %d records failed; retrying one by one", len(batch))
            self._write_one_by_one(batch)
        else:
            _settle([item for item in batch if isinstance(item, _PendingEnd)], None)

    def _write_one_by_one(self, batch: list[Any]) -> None:
        by_trace: dict[str, list[Any]] = defaultdict(list)
        for item in batch:
            by_trace[item.id].append(item)
        for trace_id, items in by_trace.items():
            error: Exception | None = None
            try:
                self._commit(items)
            except Exception as exc:  # noqa: BLE001 - reported to the waiting request
                logger.exception("Could not write trace row %s", trace_id)
                error = exc
            _settle([item for item in items if isinstance(item, _PendingEnd)], error)

    def _commit(self, batch: list[Any]) -> None:
        starts = {item.id: item for item in batch if isinstance(item, TraceStart)}
        ends = [item.end for item in batch if isinstance(item, _PendingEnd)]
        new_rows = {trace_id: _fields(start) for trace_id, start in starts.items()}
        updates = []
        for end in ends:
            row = new_rows.get(end.id)
            if row is not None:
                row.update(_fields(end))  # started and ended in one batch: one INSERT
            else:
                updates.append({**_fields(end), "b_id": end.id})
        with self._engine.begin() as connection:
            if new_rows:
                rows = [_with_outcome(row) for row in new_rows.values()]
                connection.execute(insert(_TABLE), rows)
            if updates:
                connection.execute(_UPDATE_END, updates)


_END_FIELDS = [name for name in TraceEnd.__dataclass_fields__ if name != "id"]
_UPDATE_END = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("b_id"))
    .values({name: bindparam(name) for name in _END_FIELDS})
)


def _fields(record: TraceStart | TraceEnd) -> dict[str, Any]:
    # Shallow on purpose: dataclasses.asdict deep-copies the input, a cost on every request.
    return {name: getattr(record, name) for name in record.__slots__}


# An INSERT needs every column in every row of an executemany: a row not yet ended has these.
_PENDING_END = {**dict.fromkeys(_END_FIELDS), "outcome": Outcome.PENDING, "is_fallback": False}


def _with_outcome(row: dict[str, Any]) -> dict[str, Any]:
    return {**_PENDING_END, **row}


def _settle(pending: Iterable[_PendingEnd], error: Exception | None) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
    for item in pending:
        by_loop[item.future.get_loop()].append(item.future)
    for loop, futures in by_loop.items():
        # One wake-up per event loop and batch, not one per request.
        try:
            loop.call_soon_threadsafe(_resolve, futures, error)
        except RuntimeError:
            logger.warning("Event loop closed before %d trace commits were reported", len(futures))


def _resolve(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(TraceWriteError(str(error)))
