"""The dashboard's settings, from the environment or ``.env`` (shared with the API)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """Where the API is and how patiently to wait for it."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    api_url: str = "http://localhost:8000"
    """Base URL of the API (``API_URL``)."""
    metrics_token: SecretStr | None = None
    """The API's ``METRICS_TOKEN``, when ``/metrics`` is guarded by one."""
    dashboard_timeout_seconds: float = Field(default=10.0, gt=0)
    """For every call but evaluations."""
    dashboard_evaluation_timeout_seconds: float = Field(default=300.0, gt=0)
    """A model's first evaluation runs it on its whole held-out set: seconds, not millis."""

    @property
    def base_url(self) -> str:
        return self.api_url.rstrip("/")
