"""Request and response schemas, as the OpenAPI docs show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorResponse(BaseModel):
    """Every error: a message naming the problem, the fields at fault, the request id."""

    error: str
    detail: list[ErrorDetail] | None = None
    request_id: str | None = None


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
    created_at: datetime | None = Field(
        description="null when the version's manifest cannot be read"
    )
    loaded_at: datetime | None
    load_seconds: float | None
    metrics: dict[str, float]


class ModelSummary(BaseModel):
    name: str
    latest_version: str
    status: str
    is_default: bool
    task: str
    input_kind: str
    labels: list[str]
    description: str
    metrics: dict[str, float]
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

    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
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
    created_at: datetime


class PredictionRecord(BaseModel):
    """One traced request, as stored."""

    id: str
    request_id: str
    received_at: datetime
    completed_at: datetime | None
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
