"""Shared fixtures: model stores in tmp_path, databases (SQLite, PostgreSQL), app clients."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from api.settings import Settings
from db.engine import make_engine
from db.migrate import upgrade_to_head
from tests.helpers import ADMIN, ATTRITION_MODELS, MODELS_DIR, VIEWER, bearer, copy_model


@pytest.fixture
def attrition_store(tmp_path: Path) -> Path:
    """A model store holding copies of the committed attrition models and their held-out set."""
    store = tmp_path / "models"
    for name in ATTRITION_MODELS:
        copy_model(store, name)
    shutil.copytree(
        MODELS_DIR / "_evaluation" / "employee-attrition",
        store / "_evaluation" / "employee-attrition",
    )
    return store


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS prediction, app_user, serving_config, model_alias, "
                "registry_change, dataset_split, dataset_row, dataset, alembic_version"
            )
        )
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
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on ``database_url``, migrated to the head revision; disposed afterwards."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


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


@pytest.fixture
def admin_headers(client: TestClient) -> dict[str, str]:
    return bearer(client, ADMIN["username"], ADMIN["password"])


@pytest.fixture
def viewer_headers(client: TestClient, admin_headers: dict[str, str]) -> dict[str, str]:
    """The token headers of ``VIEWER``, a user of role viewer that the admin creates."""
    created = client.post("/users", json={**VIEWER, "role": "viewer"}, headers=admin_headers)
    assert created.status_code == 201, created.text
    return bearer(client, VIEWER["username"], VIEWER["password"])
