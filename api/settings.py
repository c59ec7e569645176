"""Every setting, read from the environment or ``.env`` (documented in ``.env.example``)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.defaults import (
    DEFAULT_DATABASE_URL,
    USERNAME_MAX_CHARS,
    USERNAME_MIN_CHARS,
    USERNAME_PATTERN,
)

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "replace-me"}
_MIN_SECRET_CHARS = 32
# "aaaa…" or a short word repeated is as long as a real key and as easy to guess.
_MIN_SECRET_DISTINCT_CHARS = 10
_MIN_ADMIN_PASSWORD_CHARS = 12
# ENV=dev|test without SECRET_KEY: a key nobody knows, so nobody can forge a token; tokens
# then last as long as the process (`python -m api` shares one with its workers).
_PROCESS_SECRET_KEY = secrets.token_urlsafe(48)

Username = Annotated[
    str,
    StringConstraints(
        min_length=USERNAME_MIN_CHARS, max_length=USERNAME_MAX_CHARS, pattern=USERNAME_PATTERN
    ),
]
"""A user name as the API accepts one (and ADMIN_USERNAME must be)."""
_USERNAME = TypeAdapter(Username)


class Settings(BaseSettings):
    """Service configuration; init kwargs > environment > ``.env`` > defaults."""

    # hide_input_in_errors: a ValidationError (and so a traceback) would otherwise show
    # the values it was given, ADMIN_PASSWORD and SECRET_KEY among them.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    env: Literal["dev", "test", "prod"] = "dev"
    """dev and test allow a built-in secret key; test swaps every runtime for a mock."""
    host: str = "127.0.0.1"
    """Interface ``python -m api`` listens on (0.0.0.0 in containers)."""
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    """uvicorn worker processes; metrics are aggregated across them."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    database_url: str = DEFAULT_DATABASE_URL
    """SQLite file (default) or PostgreSQL (``postgresql://user:pass@host/db``)."""
    models_dir: Path = Path("models")
    default_model: str | None = "attrition-logreg"
    """Model served by ``POST /predict``: ``name``, ``name@version`` or ``name@alias``.
    Seeds a fresh database only: afterwards the database's (``PUT /default-model``) wins."""
    fallback_model: str = "attrition-gbm,instrument-mfcc"
    """Comma-separated models; the one of the failing model's task serves in its place.
    Seeds a fresh database only, as DEFAULT_MODEL."""
    max_loaded_models: int = Field(default=4, ge=0)
    """Least recently used models are unloaded beyond this many (0: no limit)."""
    preload_models: str = ""
    """Comma-separated models loaded at start, so that no request waits for them."""
    warm_models: str = ""
    """Comma-separated models loaded in the background once the API is up: ``/ready`` does
    not wait for them, and a request for one that is still loading waits for that load."""
    registry_poll_seconds: float = Field(default=0.5, gt=0, le=10)
    """How often each worker checks the database for a change of aliases, default or
    fallback models, or a load, unload or reload to carry out (one cheap query)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    secret_key: SecretStr | None = None
    """Signs the JWTs; required outside ENV=dev|test."""
    access_token_minutes: int = Field(default=60, ge=1)
    login_failures_per_user: int = Field(default=5, ge=1)
    """Failed logins a username may have in LOGIN_WINDOW_SECONDS; the next get 429 (the
    right password too, until the window lets one go). Counted per worker process."""
    login_failures_per_client: int = Field(default=20, ge=1)
    """Failed logins a client address may have in LOGIN_WINDOW_SECONDS, whatever the names."""
    login_window_seconds: float = Field(default=60.0, gt=0)
    """The sliding window of both login limits."""
    password_hash_threads: int = Field(default=1, ge=1)
    """Threads that hash and check passwords (argon2, slow on purpose), apart from the thread
    pool the other requests use, so that a login flood cannot slow predictions down."""
    password_hash_queue: int = Field(default=8, ge=0)
    """Logins that may wait for those threads; beyond, 503 at once."""
    admin_username: str | None = None
    admin_password: SecretStr | None = None
    """With ADMIN_USERNAME: this admin is created (or its password reset) at start."""
    metrics_token: SecretStr | None = None
    """When set, ``/metrics`` requires ``Authorization: Bearer <token>``."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_audio_seconds: float = Field(default=30.0, gt=0)
    max_batch_rows: int = Field(default=1000, ge=1)
    header_read_timeout_seconds: float = Field(default=10.0, gt=0)
    """A request line and headers that have not all arrived this long after the connection
    opened or the request began are refused (408) and the connection closed."""
    body_read_timeout_seconds: float = Field(default=30.0, gt=0)
    """A request body that has not all arrived this long after it began is refused (408)."""
    trace_commit_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a prediction waits for its trace row's commit before it is answered 503."""
    drift_interval_seconds: float = Field(default=60.0, gt=0)
    """How often each worker measures drift (``serving/drift_monitor.py``), off the request path."""
    drift_window: int = Field(default=1000, ge=1)
    """Drift is measured on the last this many rows answered by each model version."""
    drift_min_rows: int = Field(default=100, ge=1)
    """Fewer rows than this in the window give no drift figures (too few to mean anything)."""
    trace_log_dir: Path | None = None
    """A folder (a Space's bucket mount) where every committed trace row is also appended
    before its answer leaves, replayed into the database at start (db/trace_log.py)."""
    dashboard_url: str = "http://localhost:8501"
    """Where the Streamlit dashboard is, for the links on ``GET /``."""
    git_commit: str = "unknown"
    """The deployed commit, shown by ``/metadata`` (set by the image build)."""
    trace_storage: str = "local"
    """Whether traces outlive a restart, shown by ``/metadata``: ``local`` (a file on this
    machine), ``persistent`` (a trace log on a bucket volume), ``ephemeral`` (wiped on
    restart, as a Space's disk without a bucket) or ``external`` (a database server); set by
    ``deploy/start.sh``."""

    @field_validator(
        "secret_key",
        "admin_username",
        "admin_password",
        "metrics_token",
        "trace_log_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `cp .env.example .env` leaves `METRICS_TOKEN=` and the like: not a secret.
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str) -> str:
        # Hosted PostgreSQL URLs come as postgres:// or postgresql://; psycopg 3 is the driver.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url.removeprefix(prefix)
        return url

    @model_validator(mode="after")
    def _refuse_unsafe_admin_and_secrets(self) -> Settings:
        problems: list[str | None] = []
        if self.env == "prod":
            problems += [_secret_key_problem(self.secret_key)]
            problems += [_admin_password_problem(self.admin_password)]
        if self.admin_username and not self.admin_password:
            problems += ["ADMIN_USERNAME is set but ADMIN_PASSWORD is not"]
        problems += [_admin_username_problem(self.admin_username)]
        found = [problem for problem in problems if problem]
        if found:
            # Every problem at once: a deployment should not need one failed start per fix.
            raise ValueError("; ".join(found))
        return self

    @property
    def jwt_secret(self) -> str:
        return self.secret_key.get_secret_value() if self.secret_key else _PROCESS_SECRET_KEY

    @property
    def fallback_models(self) -> list[str]:
        return _split_list(self.fallback_model)

    @property
    def preloaded_models(self) -> list[str]:
        return _split_list(self.preload_models)

    @property
    def warmed_models(self) -> list[str]:
        return _split_list(self.warm_models)

    @property
    def uses_mock_runtimes(self) -> bool:
        return self.env == "test"


def _secret_key_problem(secret_key: SecretStr | None) -> str | None:
    secret = secret_key.get_secret_value() if secret_key else ""
    if (
        secret.strip().lower() in _PLACEHOLDER_SECRETS
        or len(secret) < _MIN_SECRET_CHARS
        or len(set(secret)) < _MIN_SECRET_DISTINCT_CHARS
    ):
        return (
            f"SECRET_KEY must be a random secret of at least {_MIN_SECRET_CHARS} characters, "
            f"{_MIN_SECRET_DISTINCT_CHARS} of them different, when ENV=prod (make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return None


def _admin_username_problem(username: str | None) -> str | None:
    # The rule of the names the API accepts: an admin it could not create is refused here,
    # not at its INSERT once the server has started (PostgreSQL refuses a long one).
    if username is None:
        return None
    try:
        _USERNAME.validate_python(username)
    except ValidationError:
        return (
            f"ADMIN_USERNAME must have {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} "
            "characters, each a letter, a digit or one of _ . @ -"
        )
    return None


def _admin_password_problem(password: SecretStr | None) -> str | None:
    if password is not None and len(password.get_secret_value()) < _MIN_ADMIN_PASSWORD_CHARS:
        return (
            f"ADMIN_PASSWORD must have at least {_MIN_ADMIN_PASSWORD_CHARS} characters "
            "when ENV=prod"
        )
    return None


def load_settings(program: str) -> Settings:
    """The settings, or exit with one line per problem (no traceback, no value: secrets)."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "\n".join(f"  {line}" for line in settings_errors(error))
        sys.exit(f"{program}: invalid settings:\n{problems}")


def settings_errors(error: ValidationError) -> list[str]:
    """One line per problem, naming the variable and never its value (it may be a secret)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False, include_context=False):
        variable = ".".join(str(part) for part in problem["loc"]).upper()
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{variable}: {message}" if variable else message)
    return lines


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
