"""POST /predict and /predict/{model_ref}: the reason this service exists."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.prediction import PredictionService
from api.schemas import ErrorResponse, PredictionResponse

router = APIRouter(tags=["predict"])

_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": PredictionResponse, "description": "The prediction"},
    404: {"model": ErrorResponse, "description": "Unknown model"},
    413: {"model": ErrorResponse, "description": "Body, file or batch too large"},
    415: {"model": ErrorResponse, "description": "JSON sent to an audio model or the reverse"},
    422: {"model": ErrorResponse, "description": "Invalid input: every bad field is named"},
    503: {"model": ErrorResponse, "description": "Neither the model nor a fallback can serve"},
}
# The body's schema and examples are filled in from the registry's manifests (api/openapi.py).
_BODY_DOC = {"requestBody": {"required": True, "content": {}}}


def _service(request: Request) -> PredictionService:
    service: PredictionService = request.app.state.prediction_service
    return service


@router.post(
    "/predict",
    summary="Predict with the default model",
    responses=_RESPONSES,
    response_class=Response,
    openapi_extra=_BODY_DOC,
)
async def predict_default(request: Request) -> Response:
    """Tabular: JSON ``{"features": {...}}`` or ``{"instances": [...]}``; audio: a ``file``."""
    return await _service(request).predict(request, None)


@router.post(
    "/predict/{model_ref}",
    summary="Predict with a named model (name or name@version)",
    responses=_RESPONSES,
    response_class=Response,
    openapi_extra=_BODY_DOC,
)
async def predict_with_model(request: Request, model_ref: str) -> Response:
    """Same body as ``/predict``; the model is ``name`` (latest version) or ``name@version``."""
    return await _service(request).predict(request, model_ref)
