"""GET /traffic: requests, errors, fallbacks and latency per time bucket, from the traces."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from db.tables import Outcome, Prediction


def _trace(
    client: TestClient,
    ago: timedelta,
    *,
    outcome: str = Outcome.OK,
    fallback: bool = False,
    latency_ms: float = 2.0,
) -> None:
    received = datetime.now(UTC) - ago
    row = Prediction(
        id=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        received_at=received,
        completed_at=received,
        model_requested="attrition-logreg",
        model_name="attrition-logreg",
        model_version="1",
        is_fallback=fallback,
        outcome=outcome,
        input_kind="tabular",
        latency_ms=latency_ms,
    )
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        session.add(row)
        session.commit()


def _counted(buckets: list[dict[str, object]], key: str) -> int:
    return sum(int(bucket[key]) for bucket in buckets)  # type: ignore[call-overload]


def test_traffic_needs_a_token(client: TestClient) -> None:
    assert client.get("/traffic").status_code == 401


def test_traffic_counts_each_window_from_the_database(
    client: TestClient, viewer_headers: dict[str, str]
) -> None:
    _trace(client, timedelta(minutes=5), latency_ms=1.0)
    _trace(client, timedelta(minutes=5, seconds=1), latency_ms=3.0)
    _trace(client, timedelta(minutes=30), outcome=Outcome.INVALID_INPUT)
    _trace(client, timedelta(hours=5), fallback=True)
    _trace(client, timedelta(days=3), outcome=Outcome.ERROR)
    _trace(client, timedelta(days=10))

    totals = {}
    for window in ("hour", "day", "week"):
        answer = client.get("/traffic", params={"window": window}, headers=viewer_headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        buckets = body["buckets"]
        starts = [datetime.fromisoformat(bucket["start"]) for bucket in buckets]
        assert starts == sorted(starts) and 60 <= len(buckets) <= 100
        assert all(
            (later - earlier).total_seconds() == body["bucket_seconds"]
            for earlier, later in zip(starts, starts[1:], strict=False)
        )
        totals[window] = tuple(
            _counted(buckets, key) for key in ("requests", "errors", "fallbacks")
        )
    assert totals == {"hour": (3, 1, 0), "day": (4, 1, 1), "week": (5, 2, 1)}

    hour = client.get("/traffic", headers=viewer_headers).json()["buckets"]
    busy = [bucket for bucket in hour if bucket["requests"]]
    pair = max(busy, key=lambda bucket: bucket["requests"])
    if pair["requests"] == 2:  # both in one minute unless the minute turned between them
        assert pair["latency_ms_avg"] == pytest.approx(2.0) and pair["latency_ms_max"] == 3.0
    assert all(bucket["latency_ms_avg"] is None for bucket in hour if not bucket["requests"])


def test_an_unknown_window_is_422(client: TestClient, viewer_headers: dict[str, str]) -> None:
    answer = client.get("/traffic", params={"window": "year"}, headers=viewer_headers)
    assert answer.status_code == 422
