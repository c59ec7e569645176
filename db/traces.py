"""The trace writer: every prediction's row, written in group commits.

A request's row is written once, whole, when the request ends (its input was captured
before the model ran); the request then waits until the commit that holds it. Every row
recorded meanwhile goes into the same transaction, so durability costs one commit per
batch, not one per request, and no row is ever left half-written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import operator
import queue
import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Engine,
    PoolProxiedConnection,
    String,
    TypeDecorator,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeEngine

from db.engine import is_reachable
from db.tables import Outcome, Prediction
from db.wal_checkpoint import CHECKPOINT_INTERVAL_SECONDS, WalCheckpointer

if TYPE_CHECKING:
    from db.trace_log import TraceLog

logger = logging.getLogger(__name__)

_TABLE = Prediction.__table__  # type: ignore[attr-defined]
_MAX_BATCH = 1024
_LOOP_BUSY_TIMEOUT_MS = 2000
_WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
_CLOSE_TIMEOUT_SECONDS = 10
_MAX_FLUSH_WAITS = 4


@dataclass(slots=True)
class TraceRow:
    """One request, whole: what was asked, who served it, and the answer or the error."""

    id: str
    """Made by the server, unique per request: the row's key."""
    request_id: str
    protocol: str
    received_at: datetime
    completed_at: datetime
    model_requested: str
    input_kind: str
    input: Any
    outcome: Outcome
    rows: int = 1
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
class _Pending:
    row: TraceRow
    future: asyncio.Future[None]


def make_trace_writer(engine: Engine, log: TraceLog | None = None) -> TraceWriter:
    """The writer that suits the database: on the event loop for SQLite, a thread otherwise.

    A SQLite commit in WAL mode with ``synchronous=NORMAL`` is a local write of a few tens of
    microseconds: done on the event loop it costs less than handing rows to a thread and
    waking the loop again, and nothing contends for the GIL. A PostgreSQL commit waits for
    the server's fsync and a network round trip, so it goes to a thread; so does every
    commit that ``log`` (a bucket mount, see db/trace_log.py) must also flush.
    """
    if engine.dialect.name == "sqlite" and log is None:
        return LoopTraceWriter(engine)
    return ThreadTraceWriter(engine, log)


class TraceWriter(ABC):
    """Writes trace rows in group commits; ``start()`` before use, ``close()`` at the end."""

    may_stall: ClassVar[bool] = True
    """Whether a commit can wait on the database for an unbounded time (a frozen server)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = _RowInsert(engine)
        self._connection: PoolProxiedConnection | None = None
        self._lost_connection = False
        """Whether the last commit failed because its connection was gone."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Write what is queued, then stop."""

    @abstractmethod
    def record(self, row: TraceRow) -> asyncio.Future[None]:
        """Queue ``row``; the future resolves once it is committed (or fails with the commit)."""

    def database_reachable(self) -> bool:
        """True when a trivial query succeeds (blocking: call from a thread)."""
        return is_reachable(self._engine)

    def _write_batch(self, batch: list[_Pending]) -> list[tuple[_Pending, Exception | None]]:
        """Commit ``batch`` in one transaction: each row and its outcome.

        When a row is at fault (a duplicate key, a value the database refuses), the rows are
        retried one by one, so that only that row fails. When the database is (locked, down,
        unreachable), the whole batch fails at once: a retry per row would wait once per row.
        """
        try:
            self._commit(batch)
        except Exception as first_error:  # noqa: BLE001 - reported to the waiting requests
            error = first_error
            if self._lost_connection:
                # The kept connection was gone (a restarted database): once more, on a new
                # one. Not after any other failure: a locked database would be waited for
                # twice, on the event loop.
                try:
                    self._commit(batch)
                except Exception as second_error:  # noqa: BLE001 - as above
                    error = second_error
                else:
                    return [(pending, None) for pending in batch]
            if len(batch) == 1 or not self._is_row_error(error):
                logger.error("Commit of %d trace rows failed: %s", len(batch), error)
                return [(pending, error) for pending in batch]
            logger.warning("Group commit of %d rows refused a row; retrying one by one", len(batch))
        else:
            return [(pending, None) for pending in batch]
        outcomes: list[tuple[_Pending, Exception | None]] = []
        for pending in batch:
            try:
                self._commit([pending])
            except Exception as error:  # noqa: BLE001 - reported to the waiting request
                logger.exception("Could not write trace row %s", pending.row.id)
                outcomes.append((pending, error))
            else:
                outcomes.append((pending, None))
        return outcomes

    def _is_disconnect(self, error: Exception, connection: PoolProxiedConnection) -> bool:
        dbapi = self._engine.dialect.dbapi
        if dbapi is None or not isinstance(error, dbapi.Error):
            return False
        return self._engine.dialect.is_disconnect(error, connection.dbapi_connection, None)

    def _is_row_error(self, error: Exception) -> bool:
        dbapi = self._engine.dialect.dbapi
        row_errors: tuple[type[BaseException], ...] = (TypeError, ValueError)
        if dbapi is not None:
            row_errors += (dbapi.IntegrityError, dbapi.DataError)
        return isinstance(error, row_errors)

    def _commit(self, batch: list[_Pending]) -> None:
        # One connection kept open: checking one out of the pool for every batch costs more
        # than the INSERT. A connection that failed is dropped and the next batch reconnects.
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        try:
            cursor = connection.cursor()
            try:
                cursor.executemany(
                    self._insert.sql, self._insert.parameters([p.row for p in batch])
                )
            finally:
                # A failed statement left open would keep SQLite's write lock for as long
                # as its error lives, and every later commit would wait for it.
                cursor.close()
            connection.commit()
        except Exception as error:
            # Asked before invalidating: the driver's answer reads the connection's state.
            self._lost_connection = self._is_disconnect(error, connection)
            self._connection = None
            connection.invalidate()
            raise
        self._lost_connection = False

    def _connect(self) -> PoolProxiedConnection:
        return self._engine.raw_connection()

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _RowInsert:
    """The trace row's INSERT, compiled once for the engine's dialect, with its converters.

    Executed on the driver's cursor: the same SQL and the same value conversions (JSON,
    datetimes, booleans) as SQLAlchemy's, without building an execution context per batch.
    ``skip_existing``: a row whose id is already there is left as it is (a replay).
    """

    def __init__(self, engine: Engine, *, skip_existing: bool = False) -> None:
        dialect = engine.dialect
        statement = _insert_skipping_existing(dialect) if skip_existing else insert(_TABLE)
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self._positional = dialect.positional
        names = compiled.positiontup if dialect.positional else list(compiled.binds)
        assert names is not None
        self._names = list(names)
        self._values = operator.attrgetter(*names)  # every column's value in one call
        self._conversions = [
            (index, convert)
            for index, name in enumerate(names)
            if (convert := _converter(_TABLE.c[name], dialect)) is not None
        ]

    def parameters(
        self, rows: list[TraceRow]
    ) -> Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]]:
        """Each row's values in the driver's parameter style (positional or named)."""
        converted = []
        for row in rows:
            values = list(self._values(row))
            for index, convert in self._conversions:
                values[index] = convert(values[index])
            converted.append(values)
        if self._positional:
            return converted
        return [dict(zip(self._names, values, strict=True)) for values in converted]


def _insert_skipping_existing(dialect: Dialect) -> Insert:
    if dialect.name == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])
    return sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])


def insert_rows(engine: Engine, rows: list[TraceRow], *, skip_existing: bool = False) -> None:
    """Insert ``rows`` in one transaction, as the writers do (for a replay: ``skip_existing``)."""
    statement = _RowInsert(engine, skip_existing=skip_existing)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.executemany(statement.sql, statement.parameters(rows))
        cursor.close()
        connection.commit()
    finally:
        connection.close()


class LoopTraceWriter(TraceWriter):
    """Commits on the event loop, once rows stop coming, every row recorded meanwhile."""

    may_stall = False  # a local file, and a bounded wait for its lock

    def __init__(
        self, engine: Engine, *, checkpoint_interval: float = CHECKPOINT_INTERVAL_SECONDS
    ) -> None:
        super().__init__(engine)
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._checkpoint_interval = checkpoint_interval
        self._checkpointer: WalCheckpointer | None = None

    def start(self) -> None:
        """The WAL checkpoints' thread (a SQLite file); the first row schedules the first
        commit."""
        url = self._engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            checkpointer = WalCheckpointer(self._engine, self._checkpoint_interval)
            if checkpointer.start():
                self._checkpointer = checkpointer

    def _connect(self) -> PoolProxiedConnection:
        connection = super()._connect()
        if self._engine.dialect.name == "sqlite":
            cursor = connection.cursor()
            # This commit runs on the event loop: waiting 30 s for another process's write
            # lock would stall every request. A commit takes microseconds; past this, fail.
            cursor.execute(f"PRAGMA busy_timeout={_LOOP_BUSY_TIMEOUT_MS}")
            if self._checkpointer is not None:
                # Checkpoints are the thread's (db/wal_checkpoint.py), never a commit's.
                cursor.execute("PRAGMA wal_autocheckpoint=0")
                # A WAL that grew under a burst is cut back when it starts over.
                cursor.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
            cursor.close()
        return connection

    def _disconnect(self) -> None:
        # Closed for good, not returned to the pool: its settings (no checkpoints, a short
        # lock wait) are this writer's, not for whoever takes a connection next.
        if self._connection is not None:
            self._connection.invalidate()
            self._connection = None

    def close(self) -> None:
        self._flush()
        self._disconnect()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    def record(self, row: TraceRow) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append(_Pending(row, future))
        if not self._flush_scheduled:
            # After the callbacks already due: every request that reaches its end in this
            # turn of the loop, or in the next ones while the batch grows, shares the commit.
            loop.call_soon(self._flush_once_settled, loop, 1, 0)
            self._flush_scheduled = True
        return future

    def _flush_once_settled(self, loop: asyncio.AbstractEventLoop, seen: int, waits: int) -> None:
        """Commit, unless rows are still coming: then wait one more turn of the loop.

        ``seen``: the rows there were at the last look (the first: the row that scheduled
        this). More rows since mean requests are still reaching their end, and the loop's
        next turn reads more of them: they share the commit, which costs about as much for
        many rows as for few (its pages are mostly the indexes' last ones). A lone request
        is committed at once; a growing batch waits ``_MAX_FLUSH_WAITS`` turns at most.
        """
        pending = len(self._pending)
        if pending > seen and waits < _MAX_FLUSH_WAITS:
            loop.call_soon(self._flush_once_settled, loop, pending, waits + 1)
            return
        self._flush()

    def _flush(self) -> None:
        batch, self._pending, self._flush_scheduled = self._pending, [], False
        if batch:
            _resolve(self._write_batch(batch))
        if self._checkpointer is not None and self._checkpointer.gave_up:
            self._checkpointer = None
            self._disconnect()  # the next commit connects with SQLite's own checkpoints


_STOP = object()


class ThreadTraceWriter(TraceWriter):
    """Commits on its own thread: every row queued while the last commit ran, in one.

    With a ``log``, the committed rows are appended to it and flushed before anyone is
    answered: a prediction is acknowledged once it is both in the database and on the log.
    """

    def __init__(self, engine: Engine, log: TraceLog | None = None) -> None:
        super().__init__(engine)
        self._log = log
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trace-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is None:
            return  # never started: its log opened no segment either (they open at append)
        self._queue.put(_STOP)
        self._thread.join(_CLOSE_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            # A frozen database holds the thread in a commit: the process must still stop.
            # Its requests were answered 503 when their commit timed out.
            logger.error(
                "Trace writer still blocked in a commit after %s s; leaving it",
                _CLOSE_TIMEOUT_SECONDS,
            )
        self._thread = None

    def record(self, row: TraceRow) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put(_Pending(row, future))
        return future

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
            pending = [item for item in batch if item is not _STOP]
            if pending:
                outcomes = self._write_batch(pending)
                if self._log is not None:
                    outcomes = _logged(self._log, outcomes)
                _resolve_threadsafe(outcomes)
        self._disconnect()
        if self._log is not None:
            self._log.close()


def _converter(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """SQLAlchemy's bind processor of ``column``, or a faster one that gives the same value.

    On SQLite, JSON goes straight to the engine's serializer (SQLAlchemy's wraps it in checks
    that a trace row never needs) and datetimes come from ``isoformat``, not ``%``.
    """
    if dialect.name == "sqlite" and isinstance(column.type, JSON):
        serializer: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps
        return serializer
    if dialect.name == "sqlite" and isinstance(column.type, DateTime):
        return _sqlite_datetime
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    if isinstance(_underlying(column.type), String) and processor is None:
        # PostgreSQL text refuses U+0000, which a hostile model name or a model's error
        # message may carry: every text column, in one place, the same on every database.
        return _without_nul
    return processor


def _underlying(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    # SQLModel's AutoString decorates String.
    return type_.impl_instance if isinstance(type_, TypeDecorator) else type_


def _without_nul(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def _sqlite_datetime(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite format, 'YYYY-MM-DD HH:MM:SS.ffffff', the time zone dropped (UTC).
    return None if value is None else value.isoformat(" ", "microseconds")[:26]


_Outcomes = list[tuple[_Pending, Exception | None]]


def _logged(log: TraceLog, outcomes: _Outcomes) -> _Outcomes:
    """``outcomes`` once the committed rows are on ``log``; all failed if they are not."""
    committed = [pending.row for pending, error in outcomes if error is None]
    if not committed:
        return outcomes
    try:
        log.append(committed)
    except OSError as error:
        logger.error("Could not append %d trace rows to the log: %s", len(committed), error)
        return [(pending, failure or error) for pending, failure in outcomes]
    return outcomes


def _resolve_threadsafe(outcomes: _Outcomes) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, _Outcomes] = defaultdict(list)
    for pending, error in outcomes:
        by_loop[pending.future.get_loop()].append((pending, error))
    for loop, loop_outcomes in by_loop.items():
        # One wake-up per event loop and batch, not one per request.
        try:
            loop.call_soon_threadsafe(_resolve, loop_outcomes)
        except RuntimeError:
            logger.warning(
                "Event loop closed before %d trace commits were reported", len(loop_outcomes)
            )


def _resolve(outcomes: _Outcomes) -> None:
    for pending, error in outcomes:
        future = pending.future
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(TraceWriteError(str(error)))
