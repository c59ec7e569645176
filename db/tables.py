"""The tables: one row per prediction request (the audit trail), the API's users, the serving
state, and the training data sets."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from db.defaults import USERNAME_MAX_CHARS

# NOTE: named constraints and indexes, so migrations can refer to them on every database.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

_JSON = JSON().with_variant(JSONB(), "postgresql")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    """How a prediction request ended; a bounded set, also used as a metric label."""

    OK = "ok"
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


class Prediction(SQLModel, table=True):
    """A prediction request: its input as received, then what served it and the answer."""

    __tablename__ = "prediction"
    # Each index costs every traced request a b-tree insert: only those the history's
    # queries use (db/queries.py): newest first, by model or by outcome, one request by id.
    __table_args__ = (
        Index("ix_prediction_model_name_received_at", "model_name", "received_at"),
        Index("ix_prediction_outcome_received_at", "outcome", "received_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    """Made by the server for each request: a client cannot make two requests share a row."""
    request_id: str = Field(max_length=64, index=True)
    """The ``X-Request-ID`` answered to the client (its own, when it sent a sane one)."""
    protocol: str = Field(default="rest", max_length=16)
    """The transport that took the request: ``rest`` (native routes) or ``v2`` (OIP)."""
    received_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), index=True, nullable=False)
    )
    completed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    model_requested: str = Field(max_length=128)
    model_name: str | None = Field(default=None, max_length=128)
    model_version: str | None = Field(default=None, max_length=64)
    is_fallback: bool = False
    fallback_reason: str | None = None
    outcome: str = Field(max_length=32)
    input_kind: str = Field(max_length=16)
    rows: int = 1
    input: Any = Field(default=None, sa_column=Column(_JSON))
    """Tabular: the features as sent. Audio: sha256, duration, format and size, never bytes."""
    output: Any = Field(default=None, sa_column=Column(_JSON))
    label: str | None = Field(default=None, max_length=128)
    error: str | None = None
    latency_ms: float | None = None


class User(SQLModel, table=True):
    """Someone who may read the prediction history (viewer) or manage models (admin)."""

    # NOTE: "user" is a reserved word in PostgreSQL.
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=USERNAME_MAX_CHARS, unique=True, index=True)
    hashed_password: str = Field(max_length=255)
    role: str = Field(default=Role.VIEWER, max_length=16)
    is_active: bool = True
    token_version: int = 0
    """Carried by each token; a password change or a disabling bumps it, so that every token
    issued before is refused."""
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


MODEL_NAME_MAX_CHARS = 128
"""The longest model name the tables store (as ``prediction.model_name``)."""


class ChangeAction(StrEnum):
    """What an admin changed: the serving state, or the models loaded on every worker."""

    ALIAS_SET = "alias_set"
    ALIAS_DELETED = "alias_deleted"
    ROLLBACK = "rollback"
    DEFAULT_MODEL = "default_model"
    FALLBACK_MODELS = "fallback_models"
    LOAD = "load"
    UNLOAD = "unload"
    RELOAD = "reload"


class ServingConfig(SQLModel, table=True):
    """The one row of what every worker serves by default, and a counter of every change.

    Each change bumps ``generation`` first: workers poll it, and the row's lock puts the
    changes, and so their ids in ``registry_change``, in commit order.
    """

    __tablename__ = "serving_config"

    id: int = Field(default=1, primary_key=True)
    generation: int = 0
    default_model: str | None = Field(default=None, max_length=256)
    fallback_models: list[str] = Field(
        default_factory=list, sa_column=Column(_JSON, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ModelAlias(SQLModel, table=True):
    """An alias of a model (``champion``, ``challenger``, …) and the version it names now."""

    __tablename__ = "model_alias"

    model_name: str = Field(primary_key=True, max_length=MODEL_NAME_MAX_CHARS)
    alias: str = Field(primary_key=True, max_length=64)
    version: str = Field(max_length=64)
    updated_by: str = Field(max_length=USERNAME_MAX_CHARS)
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class RegistryChange(SQLModel, table=True):
    """One change, as the history shows it: who, when, what, from and to.

    Load, unload and reload are changes too: every worker carries them out when it sees
    them. For those, ``to_version`` is the version acted on (None: every version).
    """

    __tablename__ = "registry_change"

    id: int | None = Field(default=None, primary_key=True)
    changed_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    actor: str = Field(max_length=USERNAME_MAX_CHARS)
    action: str = Field(max_length=32)
    model_name: str | None = Field(default=None, max_length=MODEL_NAME_MAX_CHARS, index=True)
    alias: str | None = Field(default=None, max_length=64)
    from_version: str | None = None
    """The version before (a reference for the default model, a list for the fallbacks)."""
    to_version: str | None = None


DATASET_NAME_MAX_CHARS = 64


class Dataset(SQLModel, table=True):
    """One version of a training data set: where it came from and the hash of its content.

    A name's versions count 1, 2, … in the order their contents were first loaded; loading a
    content already stored (same sha256) finds its version instead of making a new one.
    """

    __tablename__ = "dataset"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_dataset_name_version"),
        UniqueConstraint("name", "sha256", name="uq_dataset_name_sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=DATASET_NAME_MAX_CHARS)
    version: int
    source: str
    sha256: str = Field(max_length=64)
    row_count: int
    columns: list[dict[str, str]] = Field(sa_column=Column(_JSON, nullable=False))
    """The schema: ``[{"name": ..., "type": "integer" | "number" | "string"}, …]`` in order."""
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class DatasetRow(SQLModel, table=True):
    """One row of a data set version, as a JSON object keyed by column name.

    JSON rather than one SQL column per feature: any data set fits the one table, and
    training always reads a version whole.
    """

    __tablename__ = "dataset_row"

    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    )
    row_index: int = Field(primary_key=True)
    """The row's position in the data set, from 0: what splits refer to."""
    data: dict[str, Any] = Field(sa_column=Column(_JSON, nullable=False))


class DatasetSplit(SQLModel, table=True):
    """A named split of a data set version (``heldout``): which rows train, which evaluate.

    Recorded by the first training on the version and reused by every later one, so models
    of the task are trained and compared on the same rows. Both lists keep their order:
    cross-validation folds are drawn by position, so the order is part of the split.
    """

    __tablename__ = "dataset_split"

    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    )
    name: str = Field(primary_key=True, max_length=64)
    method: str
    """How the rows were drawn, e.g. ``stratified 20 % on Attrition, seed 42``."""
    train_rows: list[int] = Field(sa_column=Column(_JSON, nullable=False))
    heldout_rows: list[int] = Field(sa_column=Column(_JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
