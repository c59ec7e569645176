"""Settings: environment parsing, database URL normalisation, refusing weak secrets in prod."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["postgres://u:p@db:5432/traces", "postgresql://u:p@db:5432/traces"],
)
def test_postgres_urls_use_psycopg3(url: str) -> None:
    assert settings(database_url=url).database_url == "postgresql+psycopg://u:p@db:5432/traces"


def test_sqlite_url_is_kept() -> None:
    assert settings(database_url="sqlite:///x.db").database_url == "sqlite:///x.db"


@pytest.mark.parametrize("secret", [None, "", "changeme", "short-but-not-empty"])
def test_prod_refuses_missing_short_or_placeholder_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        settings(env="prod", secret_key=secret)


def test_without_a_secret_dev_signs_with_a_key_nobody_knows() -> None:
    dev = settings(env="dev").jwt_secret
    assert len(dev) >= 32 and dev == settings(env="test").jwt_secret  # one per process
    assert settings(env="prod", secret_key="s3cr3t-" * 6).jwt_secret == "s3cr3t-" * 6


def test_empty_values_from_env_example_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METRICS_TOKEN", "SECRET_KEY", "ADMIN_USERNAME", "ADMIN_PASSWORD"):
        monkeypatch.setenv(name, "")
    loaded = settings()
    assert loaded.metrics_token is None and loaded.secret_key is None
    assert loaded.admin_username is None


def test_admin_username_needs_a_password() -> None:
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD"):
        settings(admin_username="root")


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALLBACK_MODEL", " attrition-gbm , instrument-mfcc,")
    monkeypatch.setenv("PRELOAD_MODELS", "attrition-logreg")
    loaded = settings()
    assert loaded.fallback_models == ["attrition-gbm", "instrument-mfcc"]
    assert loaded.preloaded_models == ["attrition-logreg"]


def test_env_test_means_mock_runtimes() -> None:
    assert settings(env="test").uses_mock_runtimes
    assert not settings(env="dev").uses_mock_runtimes
