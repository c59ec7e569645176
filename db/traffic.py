"""Traffic over time from the trace table: one aggregate query, grouped by time bucket.

The database counts and averages; only one row per non-empty bucket comes back. The time
range is a condition on ``received_at``, which is indexed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, Integer, case, cast, func, select
from sqlmodel import Session, col

from db.tables import Outcome, Prediction


@dataclass(frozen=True, slots=True)
class TrafficBucket:
    start_epoch: int
    """Seconds since the epoch (UTC) at which the bucket starts."""
    requests: int
    errors: int
    """Requests that did not end ``ok`` (invalid input included)."""
    fallbacks: int
    latency_ms_avg: float | None
    latency_ms_max: float | None


def traffic(session: Session, since: datetime, bucket_seconds: int) -> list[TrafficBucket]:
    """Requests received at or after ``since``, per bucket of ``bucket_seconds``, oldest first."""
    epoch = _epoch_seconds(session)
    bucket = (epoch // bucket_seconds) * bucket_seconds  # integer division in SQL
    errors = func.sum(case((col(Prediction.outcome) != Outcome.OK, 1), else_=0))
    fallbacks = func.sum(case((col(Prediction.is_fallback), 1), else_=0))
    query = (
        select(
            bucket.label("bucket"),
            func.count().label("requests"),
            errors,
            fallbacks,
            func.avg(col(Prediction.latency_ms)),
            func.max(col(Prediction.latency_ms)),
        )
        .where(col(Prediction.received_at) >= since)
        .group_by(bucket)
        .order_by(bucket)
    )
    return [
        TrafficBucket(
            start_epoch=int(row[0]),
            requests=int(row[1]),
            errors=int(row[2] or 0),
            fallbacks=int(row[3] or 0),
            latency_ms_avg=None if row[4] is None else float(row[4]),
            latency_ms_max=None if row[5] is None else float(row[5]),
        )
        for row in session.execute(query).all()
    ]


def _epoch_seconds(session: Session) -> ColumnElement[int]:
    """``received_at`` in whole seconds since the epoch, in the session's SQL dialect."""
    column = col(Prediction.received_at)
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)
