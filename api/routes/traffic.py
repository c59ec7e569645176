"""Traffic over the last hour, day or week, counted by the database from the trace table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import SessionDep
from api.schemas import error_responses
from api.security import CurrentUser
from db.traffic import TrafficBucket, traffic

router = APIRouter(tags=["predictions"])


class Window(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


# Each window in about 60 to 100 buckets: enough for a chart, few rows to send.
_WINDOWS = {
    Window.HOUR: (timedelta(hours=1), 60),
    Window.DAY: (timedelta(days=1), 15 * 60),
    Window.WEEK: (timedelta(weeks=1), 2 * 3600),
}


class TrafficPoint(BaseModel):
    start: datetime
    requests: int
    errors: int
    """Requests that did not end ``ok``."""
    fallbacks: int
    latency_ms_avg: float | None
    latency_ms_max: float | None


class Traffic(BaseModel):
    window: Window
    bucket_seconds: int
    since: datetime
    buckets: list[TrafficPoint]
    """Every bucket of the window, oldest first; those with no request count zero."""


@router.get("/traffic", response_model=Traffic, responses=error_responses(401, 422, 503))
def traffic_over_time(
    session: SessionDep, _user: CurrentUser, window: Window = Window.HOUR
) -> Traffic:
    """Requests, errors, fallbacks and latency per time bucket over the last ``window``."""
    span, bucket_seconds = _WINDOWS[window]
    now = int(datetime.now(UTC).timestamp())
    first = (now - int(span.total_seconds())) // bucket_seconds * bucket_seconds
    since = datetime.fromtimestamp(first, UTC)
    counted = {row.start_epoch: row for row in traffic(session, since, bucket_seconds)}
    points = [_point(start, counted.get(start)) for start in range(first, now + 1, bucket_seconds)]
    return Traffic(window=window, bucket_seconds=bucket_seconds, since=since, buckets=points)


def _point(start: int, row: TrafficBucket | None) -> TrafficPoint:
    moment = datetime.fromtimestamp(start, UTC)
    if row is None:
        return TrafficPoint(
            start=moment,
            requests=0,
            errors=0,
            fallbacks=0,
            latency_ms_avg=None,
            latency_ms_max=None,
        )
    return TrafficPoint(
        start=moment,
        requests=row.requests,
        errors=row.errors,
        fallbacks=row.fallbacks,
        latency_ms_avg=row.latency_ms_avg,
        latency_ms_max=row.latency_ms_max,
    )
