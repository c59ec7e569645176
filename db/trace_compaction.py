"""Compaction of the trace log: many finished segments merged into one, never a row lost.

The log is the only durable copy of the traces, so compaction drops nothing but duplicates
and damaged records; what it saves is files (one per process start and per hour of writing).
It may be killed at any point, and may run on two nodes at once (a bucket has no locks):

1. Inputs are sealed segments (complete and final: their seal counts their rows, so a stale
   or partial read is never taken for the whole) and segments abandoned by a crash (unsealed
   for longer than any writer keeps one open: db/trace_log.py's ABANDONED_AFTER).
2. Every input row, once per id, goes to a new segment, which is flushed and then sealed.
   Killed before the seal, the new segment is one more unsealed file whose rows all remain
   in the inputs (a replay skips the duplicates).
3. The new segment is read back and must be sealed with every input row in it.
4. Only then are the inputs deleted. A file is thus deleted only by a process that has just
   made a sealed copy of its rows, and a sealed file is never written again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from db.trace_log import (
    MAX_SEGMENT_BYTES,
    Segment,
    SegmentFile,
    encode_record,
    new_segment_path,
    new_writer_id,
    read_segment,
    segment_paths,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Compaction:
    merged: int
    """Segments merged (0: fewer than two were finished)."""
    rows: int
    output: Path | None
    undeleted: int
    """Inputs that could not be deleted (their rows are in the output all the same)."""


def compact(directory: Path, *, max_bytes: int = MAX_SEGMENT_BYTES) -> Compaction:
    """Merge the finished segments of ``directory`` smaller than ``max_bytes`` into one."""
    inputs = _finished_segments(directory, max_bytes)
    if len(inputs) < 2:
        return Compaction(0, 0, None, 0)
    rows: dict[str, bytes] = {}
    for segment in inputs:
        for row_id, payload in segment.rows:
            rows.setdefault(row_id, payload)
    output = _write_sealed(directory, rows)
    written = read_segment(output)
    if not written.sealed or {row_id for row_id, _ in written.rows} != rows.keys():
        raise OSError(f"compacted segment {output.name} did not read back whole; inputs kept")
    undeleted = 0
    for segment in inputs:
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as error:
            undeleted += 1
            logger.warning("Could not delete compacted segment %s: %s", segment.path, error)
    return Compaction(len(inputs), len(rows), output, undeleted)


def _finished_segments(directory: Path, max_bytes: int) -> list[Segment]:
    now = datetime.now(UTC)
    finished: list[Segment] = []
    total = 0
    for path in segment_paths(directory):
        try:
            size = path.stat().st_size
            # A large segment stays as it is: rewriting it would only cost time.
            segment = read_segment(path) if size < max_bytes else None
        except FileNotFoundError:
            continue  # deleted meanwhile by another node's compaction
        if segment and (segment.sealed or segment.abandoned(now)) and total < max_bytes:
            finished.append(segment)
            total += size
    return finished


def _write_sealed(directory: Path, rows: dict[str, bytes]) -> Path:
    segment = SegmentFile(new_segment_path(directory, new_writer_id(), 1))
    try:
        segment.append(b"".join(encode_record(payload) for payload in rows.values()), len(rows))
        segment.seal()
    finally:
        segment.close()
    return segment.path
