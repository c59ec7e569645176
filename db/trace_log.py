"""The trace log: every committed trace row, appended to segment files on a bucket mount.

A Space's local disk is wiped at every restart, and its Storage Bucket volume is eventually
consistent, with no file locking across nodes: a live SQLite file there is unsafe, while
appends are what a bucket takes by default. So the database stays on local disk and this log
makes it durable: each group commit's rows are appended to this process's own segment and
fsynced before their requests are answered; the next start replays them (db/trace_replay.py).

A record is one line, ``<length, 8 hex> <crc32, 8 hex> <JSON>\\n`` (orjson escapes newlines in
strings, so a record never holds one). A record cut short by a crash, or whose bytes changed,
fails its check and is skipped; every other record is kept. One process writes a segment (its
name carries a random writer id), rolls to a new one when it grows large or old, and seals it
with a last record that counts its rows: a sealed segment never changes again, which is what
lets compaction (db/trace_compaction.py) merge it and delete it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from db.engine import to_json
from db.tables import Outcome
from db.traces import TraceRow

logger = logging.getLogger(__name__)

MAX_SEGMENT_BYTES = 64 * 1024 * 1024
MAX_SEGMENT_AGE = timedelta(hours=1)
"""A writer never appends to a segment older than this: it rolls to a new one first."""
ABANDONED_AFTER = timedelta(hours=24)
"""An unsealed segment this old was left by a crash (its writer would have rolled it long
ago): compaction may take it. The margin covers clock skew between nodes and frozen writers."""

_NAME = re.compile(r"^traces-(\d{8}T\d{6}Z)-([0-9a-f]{12})-(\d{5})\.log$")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_HEADER = re.compile(rb"([0-9a-f]{8}) ([0-9a-f]{8}) ")
_HEADER_BYTES = 18
_ROW_FIELDS = {field.name for field in dataclasses.fields(TraceRow)}
_SEAL = "sealed"


def encode_record(payload: bytes) -> bytes:
    """``payload`` framed as one record: its length and crc32, then itself and a newline."""
    return b"%08x %08x %s\n" % (len(payload), zlib.crc32(payload), payload)


def encode_row(row: TraceRow) -> bytes:
    """The row as JSON: the same values the database stores (datetimes in ISO 8601)."""
    try:
        return orjson.dumps(row)
    except TypeError:
        # An input orjson cannot write (nested deeper than it goes): stored as the database
        # stores it, through the engine's serializer and its capped-text fallback.
        fields = {name: getattr(row, name) for name in _ROW_FIELDS}
        fields["input"] = orjson.Fragment(to_json(row.input))
        fields["output"] = orjson.Fragment(to_json(row.output))
        return orjson.dumps(fields)


def decode_row(payload: bytes) -> TraceRow:
    """A row read back from its JSON (fields a later version added are left out)."""
    values = {name: value for name, value in orjson.loads(payload).items() if name in _ROW_FIELDS}
    for name in ("received_at", "completed_at"):
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["outcome"] = Outcome(values["outcome"])
    return TraceRow(**values)


@dataclass(slots=True)
class Segment:
    """What a segment file holds, as far as its records pass their checks."""

    path: Path
    created_at: datetime
    rows: list[tuple[str, bytes]]
    """Each row record's id and JSON, in file order."""
    sealed: bool
    """Its last record seals it and counts every row record before it: complete, final."""
    bad_records: int
    """Records that failed their check (a torn last record, changed bytes) and were skipped."""

    def abandoned(self, now: datetime) -> bool:
        return not self.sealed and now - self.created_at > ABANDONED_AFTER


def segment_paths(directory: Path) -> list[Path]:
    """The log's segment files, oldest first (files of any other name are left alone)."""
    return sorted(path for path in directory.glob("traces-*.log") if _NAME.match(path.name))


def read_segment(path: Path) -> Segment:
    """Every record of ``path`` that passes its check; the others are counted, not kept."""
    match = _NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a trace log segment")
    created_at = datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=UTC)
    rows: list[tuple[str, bytes]] = []
    sealed, bad = False, 0
    for record in _records(path.read_bytes()):
        if record is None:
            sealed, bad = False, bad + 1
            continue
        payload, fields = record
        if _SEAL in fields:
            # Sealed only when the seal is the last record and counts exactly the rows read:
            # a stale or partial read of a sealed file is never taken for the whole of it.
            sealed = fields[_SEAL] == len(rows) and bad == 0
        else:
            sealed = False
            rows.append((fields["id"], payload))
    return Segment(path, created_at, rows, sealed, bad)


def _records(data: bytes) -> Iterator[tuple[bytes, dict[str, Any]] | None]:
    """Each line's payload and its JSON, or None for a line that fails its checks."""
    lines = data.split(b"\n")
    for line in lines[:-1]:
        payload = line[_HEADER_BYTES:]
        header = _HEADER.match(line)
        if (
            header is None
            or int(header.group(1), 16) != len(payload)
            or int(header.group(2), 16) != zlib.crc32(payload)
        ):
            yield None
            continue
        try:
            fields = orjson.loads(payload)
        except orjson.JSONDecodeError:  # a crc32 collision: as unlikely as it is possible
            yield None
            continue
        known = isinstance(fields, dict) and ("id" in fields or _SEAL in fields)
        yield (payload, fields) if known else None
    if lines[-1]:
        yield None  # the last record, cut short: a write that never finished


class SegmentFile:
    """One segment being written: appends, each flushed to the bucket before it returns."""

    def __init__(self, path: Path) -> None:
        # O_EXCL: a segment is this writer's alone. O_APPEND: a bucket takes appends.
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.rows = 0
        self.size = 0
        self.opened = time.monotonic()

    def append(self, data: bytes, rows: int) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        # On a bucket mount the fsync is what uploads the bytes: the answer waits for it.
        os.fsync(self._fd)
        self.rows += rows
        self.size += len(data)

    def seal(self) -> None:
        """Append the last record: the count of every row record before it."""
        self.append(encode_record(orjson.dumps({_SEAL: self.rows})), 0)

    def close(self) -> None:
        os.close(self._fd)


def new_segment_path(directory: Path, writer_id: str, sequence: int) -> Path:
    stamp = datetime.now(UTC).strftime(_TIME_FORMAT)
    return directory / f"traces-{stamp}-{writer_id}-{sequence:05d}.log"


def new_writer_id() -> str:
    return uuid.uuid4().hex[:12]


class TraceLog:
    """This process's segments in ``directory``: ``append`` each committed batch, ``close``."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = MAX_SEGMENT_BYTES,
        max_age: timedelta = MAX_SEGMENT_AGE,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.writer_id = new_writer_id()
        self._max_bytes = max_bytes
        self._max_age_seconds = max_age.total_seconds()
        self._sequence = 0
        self._segment: SegmentFile | None = None

    def append(self, rows: Sequence[TraceRow]) -> None:
        """Append ``rows`` and flush them; an ``OSError`` means none may be acknowledged."""
        data = b"".join([encode_record(encode_row(row)) for row in rows])
        segment = self._writable_segment()
        try:
            segment.append(data, len(rows))
        except OSError:
            # What reached the file is unknown (maybe half a record): never append after
            # it, or the next record would share its line and fail its check. The segment
            # stays unsealed, and is adopted by compaction once it is old enough.
            self._segment = None
            _close_quietly(segment)
            raise

    def close(self) -> None:
        """Seal the current segment, so that compaction may merge it."""
        segment, self._segment = self._segment, None
        if segment is not None:
            try:
                segment.seal()
            except OSError as error:
                logger.warning("Could not seal trace log segment %s: %s", segment.path, error)
            _close_quietly(segment)

    def _writable_segment(self) -> SegmentFile:
        segment = self._segment
        if segment is not None and (
            segment.size >= self._max_bytes
            or time.monotonic() - segment.opened >= self._max_age_seconds
        ):
            self.close()
            segment = None
        if segment is None:
            self._sequence += 1
            path = new_segment_path(self.directory, self.writer_id, self._sequence)
            segment = self._segment = SegmentFile(path)
        return segment


def _close_quietly(segment: SegmentFile) -> None:
    try:
        segment.close()
    except OSError:
        logger.warning("Could not close trace log segment %s", segment.path)
