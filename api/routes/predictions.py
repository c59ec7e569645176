"""The prediction history (personal data: authenticated users only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import RegistryDep, SessionDep
from api.errors import InvalidRequestError, NotFoundError
from api.schemas import PredictionPage, PredictionRecord, UtcDatetime, error_responses
from api.security import CurrentUser
from db.queries import PredictionFilter, get_prediction, list_predictions
from db.tables import Outcome, Prediction
from registry.errors import InvalidModelRefError
from registry.refs import ModelRef, parse_model_ref

router = APIRouter(prefix="/predictions", tags=["predictions"])


@router.get("", response_model=PredictionPage, responses=error_responses(401, 422, 503))
def prediction_history(
    session: SessionDep,
    registry: RegistryDep,
    _user: CurrentUser,
    model: Annotated[
        str | None, Query(description="served model: name, name@version or name@alias")
    ] = None,
    outcome: Outcome | None = None,
    since: Annotated[
        UtcDatetime | None, Query(description="received at or after (ISO 8601)")
    ] = None,
    until: Annotated[UtcDatetime | None, Query(description="received before (ISO 8601)")] = None,
    fallback: Annotated[bool | None, Query(description="only fallbacks, or none")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> PredictionPage:
    """Traced requests, newest first, filtered by model, outcome and time range."""
    ref = _model_ref(model)
    if ref is not None and ref.version is not None:
        ref = registry.pinned(ref)  # an alias: the version it names now
    filters = PredictionFilter(
        model_name=ref.name if ref else None,
        model_version=ref.version if ref else None,
        outcome=outcome,
        since=since,
        until=until,
        is_fallback=fallback,
    )
    rows, total = list_predictions(session, filters, limit=limit, offset=offset)
    return PredictionPage(
        total=total, limit=limit, offset=offset, items=[_record(row) for row in rows]
    )


@router.get(
    "/{request_id}",
    response_model=PredictionRecord,
    responses=error_responses(401, 404, 503, descriptions={404: "No prediction with this id"}),
)
def prediction_by_id(request_id: str, session: SessionDep, _user: CurrentUser) -> PredictionRecord:
    """One traced request by its ``X-Request-ID``."""
    row = get_prediction(session, request_id)
    if row is None:
        raise NotFoundError(f"no prediction with request id '{request_id}'")
    return _record(row)


def _model_ref(model: str | None) -> ModelRef | None:
    if model is None:
        return None
    try:
        return parse_model_ref(model)
    except InvalidModelRefError as error:
        detail = [{"field": "model", "problem": str(error)}]
        raise InvalidRequestError(str(error), detail=detail) from error


def _record(row: Prediction) -> PredictionRecord:
    # SQLite returns naive datetimes: the record's fields give them their UTC zone back.
    return PredictionRecord.model_validate(row, from_attributes=True)
