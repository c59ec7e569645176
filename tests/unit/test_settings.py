"""Settings: environment parsing, database URL normalisation, refusing weak secrets in prod."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import Settings

REPEATED_SECRET = "kR7#qL2v" * 5  # 40 characters, but only 8 distinct ones
RANDOM_SECRET = "Xq3-vN8_tLw1ZbR6yHc0PkMa9sJeUd4G"  # 32 characters, 32 distinct


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
    assert settings(env="prod", secret_key=RANDOM_SECRET).jwt_secret == RANDOM_SECRET


def test_empty_values_from_env_example_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METRICS_TOKEN", "SECRET_KEY", "ADMIN_USERNAME", "ADMIN_PASSWORD"):
        monkeypatch.setenv(name, "")
    loaded = settings()
    assert loaded.metrics_token is None and loaded.secret_key is None
    assert loaded.admin_username is None


def test_admin_username_needs_a_password() -> None:
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD"):
        settings(admin_username="root")


@pytest.mark.parametrize("name", ["ad", "a" * 65, "admin user", "admin\u00e9", "root;", "admin\n"])
def test_an_admin_username_the_api_would_refuse_is_refused_at_start(name: str) -> None:
    with pytest.raises(ValidationError, match="ADMIN_USERNAME must have 3 to 64 characters"):
        settings(admin_username=name, admin_password="a long passphrase")


def test_an_admin_username_the_api_accepts_is_kept() -> None:
    name = "ops.admin@example-1_" + "x" * 44  # 64 characters
    assert settings(admin_username=name, admin_password="pw").admin_username == name


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALLBACK_MODEL", " attrition-gbm , instrument-mfcc,")
    monkeypatch.setenv("PRELOAD_MODELS", "attrition-logreg")
    loaded = settings()
    assert loaded.fallback_models == ["attrition-gbm", "instrument-mfcc"]
    assert loaded.preloaded_models == ["attrition-logreg"]


def test_env_test_means_mock_runtimes() -> None:
    assert settings(env="test").uses_mock_runtimes
    assert not settings(env="dev").uses_mock_runtimes


@pytest.mark.parametrize(
    "secret",
    ["a" * 64, "ab" * 32, REPEATED_SECRET],
)
def test_prod_refuses_a_secret_key_of_few_distinct_characters(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        settings(env="prod", secret_key=secret)


def test_prod_accepts_a_random_secret_key() -> None:
    assert settings(env="prod", secret_key=RANDOM_SECRET).jwt_secret == RANDOM_SECRET


@pytest.mark.parametrize("password", ["a", "admin", "elevenchars"])
def test_prod_refuses_a_short_admin_password(password: str) -> None:
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD"):
        settings(
            env="prod", secret_key=RANDOM_SECRET, admin_username="root", admin_password=password
        )


def test_prod_accepts_an_admin_password_of_twelve_characters() -> None:
    loaded = settings(
        env="prod", secret_key=RANDOM_SECRET, admin_username="root", admin_password="twelve-chars"
    )
    assert loaded.admin_password is not None
    assert loaded.admin_password.get_secret_value() == "twelve-chars"


def test_dev_keeps_accepting_a_short_admin_password() -> None:
    assert settings(env="dev", admin_username="root", admin_password="a").admin_password


@pytest.mark.parametrize("bad_port", [None, "PORT-TAIL"])
def test_a_settings_error_shows_no_input_value(
    monkeypatch: pytest.MonkeyPatch, bad_port: str | None
) -> None:
    # The prod check's error used to print the whole input, secrets included.
    monkeypatch.setenv("ENV", "prod")
    monkeypatch.setenv("SECRET_KEY", "short-SECRET-TAIL")
    monkeypatch.setenv("ADMIN_USERNAME", "root")
    monkeypatch.setenv("ADMIN_PASSWORD", "PASSWORD-TAIL")
    if bad_port:
        monkeypatch.setenv("PORT", bad_port)
    with pytest.raises(ValidationError, match="SECRET_KEY|port") as caught:
        settings()
    text = str(caught.value) + repr(caught.value)
    assert "TAIL" not in text, text
