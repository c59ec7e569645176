"""Shared fixtures: model stores in tmp_path, databases (SQLite, PostgreSQL), app clients."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import text

from api.main import create_app
from api.settings import Settings
from db.engine import make_engine

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"
ATTRITION_MODELS = ("attrition-logreg", "attrition-gbm")
ADMIN = {"username": "admin", "password": "admin-password-123"}


def attrition_example() -> dict[str, Any]:
    """The example row of the committed default model's manifest (a real held-out row)."""
    manifest = json.loads((MODELS_DIR / "attrition-logreg/1/manifest.json").read_text())
    example: dict[str, Any] = manifest["input"]["example"]
    return dict(example)


def copy_model(store: Path, name: str, version: str = "1", *, as_name: str | None = None,
               as_version: str | None = None) -> Path:
    """Copy a committed model into ``store``, optionally renamed, manifest kept consistent."""
    target = store / (as_name or name) / (as_version or version)
    shutil.copytree(MODELS_DIR / name / version, target)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["name"], manifest["version"] = as_name or name, as_version or version
    manifest_path.write_text(json.dumps(manifest))
    return target


@pytest.fixture
def attrition_store(tmp_path: Path) -> Path:
    """A model store holding copies of the committed attrition models and their held-out set."""
    store = tmp_path / "models"
    for name in ATTRITION_MODELS:
        copy_model(store, name)
    shutil.copytree(MODELS_DIR / "_evaluation" / "employee-attrition",
                    store / "_evaluation" / "employee-attrition")
    return store


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS prediction, app_user, alembic_version"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or the PostgreSQL of TEST_DATABASE_URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'traces.db'}"
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL variant skipped")
    url = Settings(_env_file=None, database_url=url).database_url  # type: ignore[call-arg]
    _reset_postgres(url)
    return url


@pytest.fixture
def make_settings(attrition_store: Path, database_url: str) -> Callable[..., Settings]:
    """Settings for a test app: mock runtimes (ENV=test) unless ``env`` says otherwise."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "database_url": database_url,
            "models_dir": attrition_store,
            "admin_username": ADMIN["username"],
            "admin_password": ADMIN["password"],
            "preload_models": "",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The app over mock runtimes, started (lifespan run) for the test."""
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client


@pytest.fixture
def real_client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The app over the real scikit-learn runtimes and committed artifacts."""
    with TestClient(create_app(make_settings(env="dev"))) as test_client:
        yield test_client


def bearer(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def admin_headers(client: TestClient) -> dict[str, str]:
    return bearer(client, ADMIN["username"], ADMIN["password"])


def metric_value(name: str, **labels: str) -> float:
    """A sample of this process's Prometheus registry (0 when it was never recorded)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
