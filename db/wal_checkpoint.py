"""SQLite WAL checkpoints on a thread of their own, off the commit that the event loop runs.

SQLite checkpoints from inside a commit, once the WAL passes 1,000 pages: that commit copies
the WAL into the database file and fsyncs both, milliseconds during which the event loop that
commits the trace rows answers nobody. The loop's writer turns those off on its connection
(``PRAGMA wal_autocheckpoint=0``) and this thread checkpoints every ``interval`` instead, on
its own connection, with the GIL released while SQLite copies and syncs. It never waits for
a lock: a commit is held up, if ever, only while the last few pages are copied.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, PoolProxiedConnection

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 0.25
"""How often the WAL is copied into the database: about this much of writes stays in it."""
_PASSIVE_PASSES = 3
_FAILURES_BEFORE_GIVING_UP = 8


class WalCheckpointer:
    """A daemon thread that checkpoints a SQLite database's WAL every ``interval`` seconds."""

    def __init__(self, engine: Engine, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self._engine, self._interval = engine, interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.gave_up = False
        """Set when checkpoints kept failing and the thread stopped: the writer must then
        turn SQLite's own checkpoints back on, or the WAL would grow without end."""

    def start(self) -> bool:
        """Start checkpointing; False (and nothing started) when no connection can be had,
        in which case the writer must leave SQLite's own checkpoints on."""
        try:
            connection = self._engine.raw_connection()
            # Its own connection, closed for good when the thread ends: the pool must not
            # hand its settings to anyone else.
            connection.detach()
            cursor = connection.cursor()
            # No wait for any lock: a RESTART waiting for a reader would hold the writer's
            # lock, and so the event loop's commit, for as long as it waited.
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.close()
        except Exception as error:  # noqa: BLE001 - SQLite's checkpoints remain
            logger.warning("No WAL checkpoint thread (%s): commits checkpoint instead", error)
            return False
        self._thread = threading.Thread(
            target=self._run, args=(connection,), name="wal-checkpoint", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop after the checkpoint under way, if any; SQLite makes the last one itself when
        the last connection closes."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(self._interval + 5)
        self._thread = None

    def _run(self, connection: PoolProxiedConnection) -> None:
        failures = 0
        try:
            while not self._stopping.wait(self._interval):
                try:
                    _checkpoint(connection)
                except Exception as error:  # noqa: BLE001 - retried, then given up
                    failures += 1
                    if failures >= _FAILURES_BEFORE_GIVING_UP:
                        logger.error(
                            "WAL checkpoints failed %d times in a row (%s): SQLite's own "
                            "checkpoints take over",
                            failures,
                            error,
                        )
                        self.gave_up = True
                        return
                    if failures == 1:
                        logger.warning("WAL checkpoint failed (retrying): %s", error)
                else:
                    failures = 0
        finally:
            connection.close()


def _checkpoint(connection: PoolProxiedConnection) -> None:
    """Copy the WAL into the database, and have SQLite start it over rather than grow it.

    SQLite starts the WAL over only when a commit finds it wholly copied, which under load a
    PASSIVE pass never leaves it: commits add to it while the pass copies. So the bulk is
    copied by PASSIVE passes, which hold nobody up, and the few pages committed meanwhile by
    one RESTART, which holds the writer only while it copies them. While a reader holds an
    older snapshot nothing can be copied past it, and a RESTART would only wait: it is left
    to the next round.
    """
    cursor = connection.cursor()
    try:
        previous = -1
        for _ in range(_PASSIVE_PASSES):
            busy, wal_frames, copied = _run_checkpoint(cursor, "PASSIVE")
            if busy or copied < wal_frames:
                return  # another checkpoint under way, or a reader in the way
            if wal_frames == previous:
                return  # all copied, and nothing committed since the pass before
            previous = wal_frames
        _run_checkpoint(cursor, "RESTART")
    finally:
        cursor.close()


def _run_checkpoint(cursor: Any, mode: str) -> tuple[int, int, int]:
    """(busy, frames in the WAL, frames copied into the database) of one checkpoint."""
    cursor.execute(f"PRAGMA wal_checkpoint({mode})")
    # fetchall: a statement left unfinished would hold a read lock, and SQLite cannot start
    # the WAL over while anyone reads it.
    ((busy, wal_frames, copied),) = cursor.fetchall()
    return busy, wal_frames, copied
