"""The trace log: records checked one by one, segments rolled and sealed, replayed
idempotently into SQLite and PostgreSQL, compacted without losing a row wherever it stops,
and written by the thread writer before any request is answered.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from db import trace_compaction
from db.trace_compaction import compact
from db.trace_log import (
    ABANDONED_AFTER,
    Segment,
    SegmentFile,
    TraceLog,
    decode_row,
    encode_record,
    encode_row,
    read_segment,
    segment_paths,
)
from db.trace_replay import open_trace_log, replay_log
from db.traces import ThreadTraceWriter, TraceRow, insert_rows, make_trace_writer
from tests.unit.test_trace_writer import committed, outcome, rows, trace


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "bucket" / "trace-log"


def write_log(directory: Path, *batches: list[TraceRow], seal: bool = True) -> Path:
    """One writer's segment holding ``batches``, sealed as a clean stop leaves it (or not)."""
    log = TraceLog(directory)
    for batch in batches:
        log.append(batch)
    (path,) = [p for p in segment_paths(directory) if log.writer_id in p.name]
    if seal:
        log.close()
    return path


def ids(segment_rows: list[tuple[str, bytes]]) -> list[str]:
    return [row_id for row_id, _ in segment_rows]


def backdate(path: Path, age: timedelta) -> Path:
    """``path`` renamed as if created ``age`` ago (a segment's name carries its creation)."""
    stamp = (datetime.now(UTC) - age).strftime("%Y%m%dT%H%M%SZ")
    older = path.with_name(f"traces-{stamp}-{path.name.split('-', 2)[2]}")
    path.rename(older)
    return older


def test_a_row_reads_back_as_it_was_written(log_dir: Path) -> None:
    row = trace("a", {"Age": 30, "Name": 'Zoë \n"quoted"'}, fallback_reason="x\x00y")
    path = write_log(log_dir, [row])

    segment = read_segment(path)
    assert segment.sealed and segment.bad_records == 0
    (_, payload), *_ = segment.rows
    assert decode_row(payload) == row
    assert path.read_bytes().count(b"\n") == 2  # one line per record: the row and the seal


def test_an_input_orjson_cannot_write_is_logged_as_the_database_stores_it() -> None:
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    decoded = decode_row(encode_row(trace("deep", {"x": deep})))
    assert decoded.input == {"unserialisable": repr({"x": deep})[:2000]}


def test_a_torn_last_record_is_ignored_and_everything_before_kept(log_dir: Path) -> None:
    path = write_log(log_dir, [trace("a"), trace("b")], [trace("c")], seal=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # killed in the middle of the last append

    segment = read_segment(path)
    assert ids(segment.rows) == ["a", "b"]
    assert segment.bad_records == 1 and not segment.sealed


def test_a_record_whose_checksum_does_not_match_is_skipped(log_dir: Path) -> None:
    path = write_log(log_dir, [trace("a"), trace("b"), trace("c")])
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"req-b"', b'"req-B"')  # same length, other bytes
    path.write_bytes(b"\n".join(lines))

    segment = read_segment(path)
    assert ids(segment.rows) == ["a", "c"]
    # One record missing: the seal no longer counts the rows read, so it is not final.
    assert segment.bad_records == 1 and not segment.sealed


@pytest.mark.parametrize(
    "line",
    [
        b"garbage without a header",
        b"0000000z 00000000 {}",
        encode_record(b'"a string, not a record"').rstrip(b"\n"),
        encode_record(b'{"neither": "a row nor a seal"}').rstrip(b"\n"),
    ],
)
def test_lines_that_are_no_record_are_skipped(log_dir: Path, line: bytes) -> None:
    path = write_log(log_dir, [trace("a")], seal=False)
    with path.open("ab") as segment:
        segment.write(line + b"\n" + encode_record(encode_row(trace("b"))))

    assert ids(read_segment(path).rows) == ["a", "b"]


def test_a_segment_rolls_when_large_or_old_and_is_sealed_when_it_rolls(log_dir: Path) -> None:
    log = TraceLog(log_dir, max_bytes=1)
    log.append([trace("a")])
    log.append([trace("b")])
    aged = TraceLog(log_dir, max_age=timedelta(0))
    aged.append([trace("c")])
    aged.append([trace("d")])
    segments = [read_segment(path) for path in segment_paths(log_dir)]
    assert sorted(ids(s.rows)[0] for s in segments) == ["a", "b", "c", "d"]
    assert sum(s.sealed for s in segments) == 2  # each writer's first; the last ones are open
    log.close()
    aged.close()
    assert all(read_segment(path).sealed for path in segment_paths(log_dir))


def test_a_failed_append_is_never_appended_after(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = TraceLog(log_dir)
    log.append([trace("a")])
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("bucket gone")))
    with pytest.raises(OSError, match="bucket gone"):
        log.append([trace("b")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    log.append([trace("c")])
    log.close()

    first, second = (read_segment(path) for path in segment_paths(log_dir))
    assert ids(first.rows) == ["a", "b"] and not first.sealed  # b's fate unknown: left open
    assert ids(second.rows) == ["c"] and second.sealed


def test_replay_fills_a_fresh_database_and_is_idempotent(engine: Engine, log_dir: Path) -> None:
    write_log(log_dir, [trace("a"), trace("b")])
    write_log(log_dir, [trace("c")], seal=False)
    insert_rows(engine, [trace("b", {"Age": 99})])  # already there: kept as it is

    first = replay_log(log_dir, engine)
    second = replay_log(log_dir, engine)

    assert (first.segments, first.rows, first.inserted) == (2, 3, 2)
    assert (second.rows, second.inserted) == (3, 0)
    assert [(p.id, p.input["Age"]) for p in rows(engine)] == [("a", 30), ("b", 99), ("c", 30)]


def test_replay_of_no_log_yet_does_nothing(engine: Engine, log_dir: Path) -> None:
    assert replay_log(log_dir, engine).segments == 0


def test_a_row_the_database_refuses_does_not_stop_the_replay(engine: Engine, log_dir: Path) -> None:
    too_long = "m" * 200  # within SQLite's reach, beyond PostgreSQL's VARCHAR(128)
    write_log(log_dir, [trace("a"), trace("b", model_requested=too_long), trace("c")])

    replay = replay_log(log_dir, engine)

    refused = 1 if engine.dialect.name == "postgresql" else 0
    assert (replay.inserted, replay.refused) == (3 - refused, refused)
    assert {"a", "c"} <= {p.id for p in rows(engine)}


def test_compaction_merges_finished_segments_into_one(log_dir: Path) -> None:
    write_log(log_dir, [trace("a"), trace("b")])
    write_log(log_dir, [trace("b"), trace("c")])  # a duplicate: kept once
    backdate(write_log(log_dir, [trace("d")], seal=False), ABANDONED_AFTER + timedelta(hours=1))
    live = write_log(log_dir, [trace("e")], seal=False)  # a writer still at work

    result = compact(log_dir)

    assert (result.merged, result.rows, result.undeleted) == (3, 4, 0)
    assert sorted(segment_paths(log_dir)) == sorted([live, result.output])
    merged = read_segment(result.output)  # type: ignore[arg-type]
    assert merged.sealed and sorted(ids(merged.rows)) == ["a", "b", "c", "d"]
    assert compact(log_dir).merged == 0  # one finished segment: nothing to merge


def all_logged_ids(directory: Path) -> set[str]:
    return {row_id for path in segment_paths(directory) for row_id in ids(read_segment(path).rows)}


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler catches it."""


@pytest.fixture
def finished_log(log_dir: Path) -> Iterator[set[str]]:
    write_log(log_dir, [trace("a"), trace("b")])
    write_log(log_dir, [trace("c")])
    backdate(write_log(log_dir, [trace("d")], seal=False), ABANDONED_AFTER * 2)
    yield {"a", "b", "c", "d"}


def test_compaction_killed_while_writing_its_output_loses_nothing(
    log_dir: Path, finished_log: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = SegmentFile.append

    def half_then_killed(self: SegmentFile, data: bytes, rows: int) -> None:
        real_append(self, data[: len(data) // 2], rows)
        raise Killed

    monkeypatch.setattr(SegmentFile, "append", half_then_killed)
    with pytest.raises(Killed):
        compact(log_dir)
    monkeypatch.undo()

    assert len(segment_paths(log_dir)) == 4  # inputs intact, beside a torn output
    assert all_logged_ids(log_dir) == finished_log
    compact(log_dir)  # the next start: the torn output is young, so it is left for later
    assert all_logged_ids(log_dir) == finished_log


def test_compaction_killed_between_its_deletions_loses_nothing(
    log_dir: Path, finished_log: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted: list[Path] = []
    real_unlink = Path.unlink

    def one_then_killed(self: Path, missing_ok: bool = False) -> None:
        if deleted:
            raise Killed
        deleted.append(self)
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", one_then_killed)
    with pytest.raises(Killed):
        compact(log_dir)
    monkeypatch.undo()

    assert len(deleted) == 1 and all_logged_ids(log_dir) == finished_log
    result = compact(log_dir)  # the next start merges the output with what is left
    assert len(segment_paths(log_dir)) == 1
    assert all_logged_ids(log_dir) == finished_log and result.rows == len(finished_log)


def test_compaction_that_cannot_delete_keeps_every_row(
    log_dir: Path, finished_log: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError("append-only volume")

    monkeypatch.setattr(Path, "unlink", refused)
    result = compact(log_dir)

    assert result.undeleted == 3 and all_logged_ids(log_dir) == finished_log


def test_compaction_keeps_its_inputs_when_its_output_does_not_read_back(
    log_dir: Path, finished_log: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs: list[Path] = []
    real_write, real_read = trace_compaction._write_sealed, trace_compaction.read_segment

    def write(directory: Path, rows: dict[str, bytes]) -> Path:
        outputs.append(real_write(directory, rows))
        return outputs[-1]

    def stale_output(path: Path) -> Segment:
        segment = real_read(path)
        if path in outputs:
            segment.rows.pop()  # the bucket served an older view of the new file
        return segment

    monkeypatch.setattr(trace_compaction, "_write_sealed", write)
    monkeypatch.setattr(trace_compaction, "read_segment", stale_output)
    with pytest.raises(OSError, match="did not read back whole"):
        compact(log_dir)
    assert all_logged_ids(log_dir) == finished_log and len(segment_paths(log_dir)) == 4


def test_open_trace_log_replays_compacts_and_opens(engine: Engine, log_dir: Path) -> None:
    write_log(log_dir, [trace("a")])
    write_log(log_dir, [trace("b")])

    log = open_trace_log(log_dir, engine)

    assert [p.id for p in rows(engine)] == ["a", "b"]
    assert len(segment_paths(log_dir)) == 1  # the two sealed segments, merged
    log.append([trace("c")])
    log.close()
    assert all_logged_ids(log_dir) == {"a", "b", "c"}


def test_the_writer_answers_only_once_the_row_is_on_the_log(engine: Engine, log_dir: Path) -> None:
    log = TraceLog(log_dir)
    writer = make_trace_writer(engine, log)
    assert isinstance(writer, ThreadTraceWriter)  # a bucket's flush must not block the loop
    writer.start()

    async def record() -> None:
        await committed(writer.record(trace("a")))
        assert all_logged_ids(log_dir) == {"a"}  # on the log when the request hears of it

    asyncio.run(record())
    writer.close()
    assert [p.id for p in rows(engine)] == ["a"]
    assert all(read_segment(path).sealed for path in segment_paths(log_dir))


def test_a_row_that_cannot_reach_the_log_is_not_acknowledged(
    engine: Engine, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ThreadTraceWriter(engine, TraceLog(log_dir))
    writer.start()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("bucket gone")))

    async def record() -> list[str]:
        return [await outcome(writer.record(trace("a"))), await outcome(writer.record(trace("b")))]

    assert asyncio.run(record()) == ["failed", "failed"]
    monkeypatch.undo()
    writer.close()


def test_a_row_the_database_refuses_is_not_logged(engine: Engine, log_dir: Path) -> None:
    insert_rows(engine, [trace("a")])
    writer = ThreadTraceWriter(engine, TraceLog(log_dir))
    writer.start()

    async def record() -> list[str]:
        futures = [writer.record(trace("a")), writer.record(trace("b"))]  # a: duplicate key
        return [await outcome(future) for future in futures]

    assert asyncio.run(record()) == ["failed", "ok"]
    writer.close()
    assert all_logged_ids(log_dir) == {"b"}
