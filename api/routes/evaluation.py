"""A model's measured metrics on its task's held-out set, for comparing models."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request

from api.deps import RegistryDep, SettingsDep
from api.errors import ConflictError, ServiceUnavailableError
from api.evaluation import (
    EvaluationFailedError,
    EvaluationUnavailableError,
    ModelEvaluation,
    ModelEvaluator,
)
from api.schemas import ErrorResponse
from api.settings import Settings

router = APIRouter(prefix="/models", tags=["models"])


@router.get(
    "/{name}/evaluation",
    response_model=ModelEvaluation,
    responses={
        404: {"model": ErrorResponse, "description": "Unknown model or version"},
        409: {"model": ErrorResponse, "description": "No evaluation set for this model"},
        503: {"model": ErrorResponse, "description": "The model cannot load or predict"},
    },
    summary="A model's metrics, ROC, confusion matrix and latency on its held-out set",
)
async def model_evaluation(
    name: str,
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    version: str | None = None,
) -> ModelEvaluation:
    """Runs the model (latest or ``?version=``) on every sample of its task's evaluation set.

    Computed on the first request for a model version (seconds), then answered from memory.
    """
    evaluator = _evaluator(request.app, settings)
    try:
        return await evaluator.evaluate(registry, f"{name}@{version}" if version else name)
    except EvaluationUnavailableError as error:
        raise ConflictError(str(error)) from error
    except EvaluationFailedError as error:
        raise ServiceUnavailableError(str(error)) from error


def _evaluator(app: FastAPI, settings: Settings) -> ModelEvaluator:
    # Created on first use, on the event loop (no await in between: no race), one per app.
    evaluator: ModelEvaluator | None = getattr(app.state, "evaluator", None)
    if evaluator is None:
        evaluator = app.state.evaluator = ModelEvaluator(settings.max_audio_seconds)
    return evaluator
