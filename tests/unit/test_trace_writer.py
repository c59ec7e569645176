"""The trace writer: group commits, one row per request, failures reported to the waiters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, select

from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.tables import Outcome, Prediction, utc_now
from db.traces import TraceEnd, TraceStart, TraceWriteError, TraceWriter


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def start(trace_id: str, features: dict[str, object] | None = None) -> TraceStart:
    return TraceStart(
        trace_id, f"req-{trace_id}", utc_now(), "attrition-logreg", "tabular",
        features or {"Age": 30},
    )


def end(trace_id: str, outcome: Outcome = Outcome.OK) -> TraceEnd:
    return TraceEnd(
        trace_id,
        utc_now(),
        outcome,
        model_name="attrition-logreg",
        model_version="1",
        output=[{"label": "No", "probabilities": {"No": 0.9, "Yes": 0.1}}],
        label="No",
        latency_ms=0.5,
    )


def rows(engine: Engine) -> list[Prediction]:
    with Session(engine) as session:
        return list(session.exec(select(Prediction).order_by(Prediction.id)).all())


def count_commits(engine: Engine) -> list[int]:
    commits: list[int] = []
    event.listen(engine, "commit", lambda _connection: commits.append(1))
    return commits


def test_many_concurrent_requests_share_few_commits(engine: Engine) -> None:
    commits = count_commits(engine)
    writer = TraceWriter(engine)
    writer.start()

    async def serve(index: int) -> None:
        writer.record_start(start(f"r{index:03d}", {"Age": index}))
        await asyncio.sleep(0)
        await writer.record_end(end(f"r{index:03d}"))

    async def serve_all() -> None:
        await asyncio.gather(*(serve(index) for index in range(200)))

    asyncio.run(serve_all())
    writer.close()
    stored = rows(engine)
    assert [row.id for row in stored] == [f"r{index:03d}" for index in range(200)]
    assert stored[7].request_id == "req-r007"
    assert all(row.outcome == Outcome.OK and row.label == "No" for row in stored)
    assert stored[7].input == {"Age": 7}
    assert stored[7].output == [{"label": "No", "probabilities": {"No": 0.9, "Yes": 0.1}}]
    assert len(commits) < 200 / 4, f"{len(commits)} commits for 200 requests"


def test_start_then_end_in_later_batch_updates_the_pending_row(engine: Engine) -> None:
    writer = TraceWriter(engine)
    writer.start()

    async def slow_request() -> None:
        writer.record_start(start("slow"))
        await asyncio.sleep(0.3)  # the writer commits the pending row meanwhile
        assert [row.outcome for row in rows(engine)] == [Outcome.PENDING]
        await writer.record_end(end("slow", Outcome.ERROR))

    asyncio.run(slow_request())
    writer.close()
    [row] = rows(engine)
    assert row.outcome == Outcome.ERROR and row.completed_at is not None


def test_a_failed_commit_fails_every_waiting_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"  # no table: every INSERT fails
    engine = make_engine(url)
    writer = TraceWriter(engine)
    writer.start()

    async def request() -> None:
        writer.record_start(start("lost"))
        await writer.record_end(end("lost"))

    with pytest.raises(TraceWriteError):
        asyncio.run(request())
    writer.close()
    engine.dispose()


def test_close_writes_what_is_queued(engine: Engine) -> None:
    writer = TraceWriter(engine)
    writer.start()
    writer.record_start(start("queued"))
    writer.close()
    assert [row.id for row in rows(engine)] == ["queued"]


def test_one_bad_row_does_not_fail_the_rest_of_its_batch(engine: Engine) -> None:
    writer = TraceWriter(engine)
    writer.start()

    async def request(request_id: str) -> str:
        writer.record_start(start(request_id))
        try:
            await writer.record_end(end(request_id))
        except TraceWriteError:
            return "failed"
        return "ok"

    async def batch() -> list[str]:
        await request("dup")
        # The same id again violates the primary key: only that request may fail.
        return await asyncio.gather(*(request(rid) for rid in ["a", "dup", "b", "c"]))

    assert asyncio.run(batch()) == ["ok", "failed", "ok", "ok"]
    writer.close()
    assert [row.id for row in rows(engine)] == ["a", "b", "c", "dup"]
