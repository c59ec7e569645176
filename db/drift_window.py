"""The recent inputs and answers of one model version, read back from the trace table for drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from db.tables import Outcome, Prediction


@dataclass(slots=True)
class DriftWindow:
    """The last rows answered, and the ``requests`` they came in (a batch gives several)."""

    requests: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None


def recent_window(engine: Engine, model: str, version: str, limit: int) -> DriftWindow:
    """The inputs and predicted labels of the last ``limit`` rows of the ``ok`` requests served
    by ``model@version``, read newest first with the ``model_name, received_at`` index."""
    query = (
        select(Prediction.input, Prediction.output, Prediction.received_at)
        .where(
            col(Prediction.model_name) == model,
            col(Prediction.model_version) == version,
            col(Prediction.outcome) == Outcome.OK,
        )
        .order_by(col(Prediction.received_at).desc())
        .limit(limit)  # each request has a row at least
        # Streamed: large batches stop the read long before ``limit`` requests.
        .execution_options(yield_per=100)
    )
    window = DriftWindow()
    # Closed on leaving: the loop may stop with PostgreSQL's server-side cursor still open.
    with Session(engine) as session, session.exec(query) as result:
        for data, output, received_at in result:
            window.requests += 1
            # SQLite gives back naive datetimes; every one the server writes is UTC.
            window.since = received_at.replace(tzinfo=received_at.tzinfo or UTC)
            window.until = window.until or window.since
            window.rows.extend(data if isinstance(data, list) else [data])
            window.labels.extend(answer["label"] for answer in output or [])
            if len(window.rows) >= limit:
                break
    del window.rows[limit:], window.labels[limit:]
    return window
