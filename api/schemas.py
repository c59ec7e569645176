"""Request and response schemas, as the OpenAPI docs show them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.settings import Username


def as_utc(moment: datetime) -> datetime:
    """``moment`` with a time zone: every timestamp is stored in UTC, and SQLite keeps none."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
"""A datetime answered with its time zone (RFC 3339 ``date-time``), UTC when it had none."""


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorResponse(BaseModel):
    """Every error: a message naming the problem, the fields at fault, the request id."""

    error: str
    detail: list[ErrorDetail] | None = None
    request_id: str | None = None


_ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "No token, or an invalid, expired or revoked one",
    403: "The token's user is not an admin",
    404: "Not found",
    408: "The request body stopped arriving (BODY_READ_TIMEOUT_SECONDS)",
    409: "Conflict",
    413: "Request body too large (MAX_BODY_BYTES)",
    415: "Unsupported media type",
    422: "Invalid request: every bad field is named",
    429: "Too many requests: retry after Retry-After seconds",
    503: "Unavailable (the database, or no model can serve): retry after Retry-After seconds",
}
_ERROR_HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    429: {"Retry-After": "seconds to wait"},
    503: {"Retry-After": "seconds to wait"},
}


def error_responses(
    *statuses: int,
    descriptions: Mapping[int, str] | None = None,
    model: type[BaseModel] = ErrorResponse,
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's errors: ``statuses``, each with ``model`` as body.

    ``descriptions`` overrides the generic description of a status.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "model": model,
            "description": (descriptions or {}).get(status, _ERROR_DESCRIPTIONS[status]),
        }
        headers = _ERROR_HEADERS.get(status)
        if headers:
            response["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in headers.items()
            }
        responses[status] = response
    return responses


class PredictRequest(BaseModel):
    """One row as ``features`` or a batch as ``instances`` (tabular models)."""

    features: dict[str, Any] | None = Field(default=None, description="one row of features")
    instances: list[dict[str, Any]] | None = Field(default=None, description="a batch of rows")


class LabelProbabilities(BaseModel):
    label: str
    probabilities: dict[str, float]


class PredictionResponse(BaseModel):
    """The answer, the model that actually served it, and whether it was a fallback."""

    request_id: str
    model: str
    version: str
    requested_model: str
    fallback: bool
    fallback_reason: str | None
    label: str | None = Field(default=None, description="single row or audio file")
    probabilities: dict[str, float] | None = Field(default=None, description="single row")
    count: int | None = Field(default=None, description="batch: number of rows")
    predictions: list[LabelProbabilities] | None = Field(default=None, description="batch")
    input: dict[str, Any] | None = Field(
        default=None, description="audio: duration_seconds and the sample_rate used"
    )
    latency_ms: float


class ModelVersionInfo(BaseModel):
    version: str
    status: str
    error: str | None
    task: str | None = Field(description="null when the version's manifest cannot be read")
    framework: str | None = Field(description="null when the version's manifest cannot be read")
    created_at: UtcDatetime | None = Field(
        description="null when the version's manifest cannot be read"
    )
    loaded_at: UtcDatetime | None
    load_seconds: float | None
    metrics: dict[str, float]
    aliases: list[str] = Field(default=[], description="the aliases naming this version")


class MeasuredOn(BaseModel):
    """The data set a model's headline ``metrics`` were measured on."""

    dataset: str = Field(description="relative to the model store")
    samples: int
    description: str


class ModelSummary(BaseModel):
    name: str
    latest_version: str
    serving_version: str = Field(
        description="the version the bare name serves: its champion when set, else the latest"
    )
    aliases: dict[str, str] = Field(description="alias → version")
    status: str
    is_default: bool
    task: str
    input_kind: str
    labels: list[str]
    description: str
    metrics: dict[str, float]
    metrics_measured_on: MeasuredOn | None = Field(
        description="the evaluation set of `metrics`; null when no recorded evaluation matches"
    )
    versions: list[ModelVersionInfo]


class ModelDetail(ModelSummary):
    manifest: dict[str, Any]


class UnreadableVersion(BaseModel):
    """A model version in the store whose manifest could not be read: it cannot serve."""

    model: str
    version: str
    path: str
    error: str


class ModelsResponse(BaseModel):
    default_model: str | None
    fallback_models: list[str]
    models: list[ModelSummary]
    """Models with at least one readable version (a failed-to-read one is listed as failed)."""
    unreadable: list[UnreadableVersion]
    """Every version whose manifest could not be read, models with no readable version too."""
    problems: list[str]


class ModelActionResponse(BaseModel):
    model: str
    status: str
    message: str


class AliasUpdate(BaseModel):
    """The version an alias is to name."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"version": "2"}]})

    version: str = Field(min_length=1, max_length=64)


class AliasChange(BaseModel):
    """An alias after a change, and the version it named before (null: none)."""

    model: str
    alias: str
    version: str | None = Field(description="null once deleted")
    previous_version: str | None


class DefaultModelUpdate(BaseModel):
    """The model ``POST /predict`` serves: ``name``, ``name@version`` or ``name@alias``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "attrition-logreg"}]})

    model: str = Field(min_length=1, max_length=256)


class DefaultModelChange(BaseModel):
    default_model: str
    previous: str | None


class FallbackModelsUpdate(BaseModel):
    """The models that stand in for a failing one of their task, in order."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"models": ["attrition-gbm", "instrument-mfcc"]}]}
    )

    models: list[str] = Field(max_length=32)


class FallbackModelsChange(BaseModel):
    fallback_models: list[str]
    previous: list[str]


class RegistryChangeRecord(BaseModel):
    """One change: who made it, when, and what from and to.

    Aliases: the versions. Default model: the references. Fallback models: the lists,
    comma-separated. Load, unload, reload: ``to_version`` is the version acted on.
    """

    id: int
    changed_at: UtcDatetime
    actor: str
    action: str = Field(
        description="alias_set, alias_deleted, rollback, default_model, fallback_models, "
        "load, unload or reload"
    )
    model: str | None
    alias: str | None
    from_version: str | None
    to_version: str | None


class RegistryChangePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[RegistryChangeRecord]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


class UserCreate(BaseModel):
    """A new user of the history (viewer) or of the admin routes (admin)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"username": "alice", "password": "a long passphrase", "role": "viewer"}]
        }
    )

    username: Username
    password: str = Field(min_length=8, max_length=256)
    role: str = Field(default="viewer", pattern="^(admin|viewer)$")


class UserUpdate(BaseModel):
    """What an admin changes about a user; fields left out stay as they are."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "admin"}, {"is_active": False}]}
    )

    password: str | None = Field(default=None, min_length=8, max_length=256)
    role: str | None = Field(default=None, pattern="^(admin|viewer)$")
    is_active: bool | None = None


class UserPublic(BaseModel):
    username: str
    role: str
    is_active: bool
    created_at: UtcDatetime


class PredictionRecord(BaseModel):
    """One traced request, as stored."""

    id: str
    request_id: str
    received_at: UtcDatetime
    completed_at: UtcDatetime | None
    model_requested: str
    model_name: str | None
    model_version: str | None
    is_fallback: bool
    fallback_reason: str | None
    outcome: str
    input_kind: str
    rows: int
    input: Any
    output: Any
    label: str | None
    error: str | None
    latency_ms: float | None


class PredictionPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[PredictionRecord]


class V2Tensor(BaseModel):
    """An Open Inference Protocol tensor: flat (or nested) data in row-major order."""

    name: str
    datatype: str = Field(description="BYTES, BOOL, INT64, INT32, FP64, FP32, ...")
    shape: list[int]
    data: list[Any] | None = Field(
        default=None, description="absent when the tensor is sent as binary data"
    )
    parameters: dict[str, Any] | None = None


class V2InferenceRequest(BaseModel):
    """OIP inference request: one input per feature (tabular), one BYTES input (audio)."""

    id: str | None = None
    inputs: list[V2Tensor]
    outputs: list[dict[str, Any]] | None = Field(
        default=None, description="label and/or probabilities; all when absent"
    )
    parameters: dict[str, Any] | None = None


class V2InferenceResponse(BaseModel):
    """OIP inference response: ``label`` [N] (BYTES) and ``probabilities`` [N, C] (FP64)."""

    model_name: str = Field(description="the model that served (a fallback says so here)")
    model_version: str
    id: str | None = None
    outputs: list[V2Tensor]


class V2Error(BaseModel):
    """Every error under ``/v2``."""

    error: str


class V2ServerReady(BaseModel):
    """``GET /v2/health/ready``: false (503) while the trace database does not answer."""

    ready: bool


class V2ModelReady(BaseModel):
    """``GET /v2/models/{m}/ready``: false (503) when the model failed to load."""

    name: str
    ready: bool
