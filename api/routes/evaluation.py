"""A model's measured metrics on its task's held-out set, for comparing models."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import RegistryDep
from api.errors import ConflictError, ServiceUnavailableError
from api.evaluation import EvaluationFailedError, ModelEvaluation, ModelEvaluator
from api.schemas import error_responses
from ml.evaluation_data import EvaluationUnavailableError

router = APIRouter(prefix="/models", tags=["models"])


@router.get(
    "/{name}/evaluation",
    response_model=ModelEvaluation,
    responses=error_responses(
        404,
        409,
        422,
        503,
        descriptions={
            404: "Unknown model or version",
            409: "No evaluation set for this model",
            422: "Not a model reference (name or name@version)",
            503: "The model cannot load or predict",
        },
    ),
    summary="A model's metrics, ROC, confusion matrix and latency on its held-out set",
)
async def model_evaluation(
    name: str,
    request: Request,
    registry: RegistryDep,
    version: str | None = None,
) -> ModelEvaluation:
    """Runs the model (as its name serves, or ``?version=``, a version or an alias) on every
    sample of its task's evaluation set.

    Computed on the first request for a model version (seconds), then answered from memory.
    """
    evaluator: ModelEvaluator = request.app.state.evaluator
    try:
        return await evaluator.evaluate(registry, f"{name}@{version}" if version else name)
    except EvaluationUnavailableError as error:
        raise ConflictError(str(error)) from error
    except EvaluationFailedError as error:
        raise ServiceUnavailableError(str(error)) from error
