"""Reading the prediction history back: filters, pagination, one request by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from db.tables import Prediction


@dataclass(frozen=True, slots=True)
class PredictionFilter:
    model_name: str | None = None
    """The model that served (or was addressed by) the request."""
    model_version: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    is_fallback: bool | None = None


def list_predictions(
    session: Session, filters: PredictionFilter, *, limit: int, offset: int
) -> tuple[list[Prediction], int]:
    """A page of predictions, newest first, and the count of all that match."""
    conditions = _conditions(filters)
    query = select(Prediction).where(*conditions)
    page = session.exec(
        query.order_by(col(Prediction.received_at).desc()).offset(offset).limit(limit)
    ).all()
    total = session.exec(select(func.count()).select_from(Prediction).where(*conditions)).one()
    return list(page), int(total)


def get_prediction(session: Session, request_id: str) -> Prediction | None:
    """The latest request answered with this ``X-Request-ID`` (a client may reuse one)."""
    query = select(Prediction).where(col(Prediction.request_id) == request_id)
    return session.exec(query.order_by(col(Prediction.received_at).desc()).limit(1)).first()


def _conditions(filters: PredictionFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.model_name:
        conditions.append(col(Prediction.model_name) == filters.model_name)
    if filters.model_version:
        conditions.append(col(Prediction.model_version) == filters.model_version)
    if filters.outcome:
        conditions.append(col(Prediction.outcome) == filters.outcome)
    if filters.since:
        conditions.append(col(Prediction.received_at) >= filters.since)
    if filters.until:
        conditions.append(col(Prediction.received_at) < filters.until)
    if filters.is_fallback is not None:
        conditions.append(col(Prediction.is_fallback) == filters.is_fallback)
    return conditions
