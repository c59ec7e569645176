"""The fallback story with the real runtimes: broken artifacts and failing models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.factories import tamper_manifest
from tests.helpers import (
    attrition_example,
    copy_model,
    install_exploding_model,
    metric_value,
    trace_of,
)


def tamper(model_dir: Path) -> None:
    artifact = model_dir / "model.joblib"
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")


@pytest.fixture
def real_app(make_settings: Callable[..., Settings]) -> Callable[..., TestClient]:
    """A client factory for the app over the real runtimes, with setting overrides."""

    def start(**overrides: Any) -> TestClient:
        return TestClient(create_app(make_settings(env="dev", **overrides)))

    return start


def test_hash_mismatch_is_served_by_the_fallback_model(
    attrition_store: Path, real_app: Callable[..., TestClient]
) -> None:
    tamper(attrition_store / "attrition-logreg" / "1")
    before = metric_value(
        "mldeploy_fallbacks_total",
        requested_model="attrition-logreg",
        model="attrition-gbm",
        version="1",
    )
    with real_app() as client:
        response = client.post("/predict", json={"features": attrition_example()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["fallback"]) == ("attrition-gbm", True)
        assert body["requested_model"] == "attrition-logreg"
        assert "sha256" in body["fallback_reason"] and "refusing to load" in body["fallback_reason"]
        row = trace_of(client, body["request_id"])
        assert row.is_fallback and row.model_name == "attrition-gbm" and row.outcome == "ok"
        assert "sha256" in (row.fallback_reason or "")
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert models["attrition-logreg"]["status"] == "failed"
        assert "sha256" in models["attrition-logreg"]["versions"][0]["error"]
        assert models["attrition-gbm"]["status"] == "loaded"
    after = metric_value(
        "mldeploy_fallbacks_total",
        requested_model="attrition-logreg",
        model="attrition-gbm",
        version="1",
    )
    assert after == before + 1


@pytest.mark.parametrize("env", ["dev", "test"])
def test_a_tampered_manifest_is_served_by_the_fallback_model(
    attrition_store: Path, make_settings: Callable[..., Settings], env: str
) -> None:
    """One digit of logreg's decision_threshold changed, no artifact touched: the mocks too."""
    tamper_manifest(attrition_store / "attrition-logreg" / "1")
    with TestClient(create_app(make_settings(env=env))) as client:
        response = client.post("/predict", json={"features": attrition_example()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["fallback"]) == ("attrition-gbm", True)
        assert "manifest_sha256" in body["fallback_reason"]
        assert "refusing to load" in body["fallback_reason"]
        assert "manifest_sha256" in (trace_of(client, body["request_id"]).fallback_reason or "")
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert models["attrition-logreg"]["status"] == "failed"
        assert "manifest_sha256" in models["attrition-logreg"]["versions"][0]["error"]


def test_broken_new_version_is_served_by_the_previous_one(
    attrition_store: Path, real_app: Callable[..., TestClient]
) -> None:
    tamper(copy_model(attrition_store, "attrition-logreg", as_version="2"))
    with real_app() as client:
        body = client.post("/predict", json={"features": attrition_example()}).json()
    assert (body["model"], body["version"], body["fallback"]) == ("attrition-logreg", "1", True)


def test_no_usable_fallback_is_503_and_traced(
    attrition_store: Path, real_app: Callable[..., TestClient]
) -> None:
    tamper(attrition_store / "attrition-logreg" / "1")
    with real_app(fallback_model="") as client:
        response = client.post("/predict", json={"features": attrition_example()})
        assert response.status_code == 503
        assert "no fallback model could serve" in response.json()["error"]
        row = trace_of(client, response.json()["request_id"])
        assert row.outcome == "unavailable" and row.input == attrition_example()


def test_runtime_failure_falls_back_for_that_request_only(
    attrition_store: Path, real_app: Callable[..., TestClient]
) -> None:
    install_exploding_model(attrition_store)
    with real_app(fallback_model="attrition-gbm") as client:
        fine = client.post(
            "/predict/attrition-fragile", json={"features": attrition_example()}
        ).json()
        assert (fine["model"], fine["fallback"]) == ("attrition-fragile", False)
        rescued = client.post(
            "/predict/attrition-fragile", json={"features": {**attrition_example(), "Age": 99}}
        ).json()
        assert (rescued["model"], rescued["fallback"]) == ("attrition-gbm", True)
        assert "FloatingPointError" in rescued["fallback_reason"]
        assert trace_of(client, rescued["request_id"]).is_fallback
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        # A failure on one input does not take the model out of service.
        assert models["attrition-fragile"]["status"] == "loaded"
