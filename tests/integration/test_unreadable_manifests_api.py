"""Unreadable manifests over HTTP (issue 9, finding 11): /predict, /ready and /models.

Before: the default model's only manifest truncated made ``POST /predict`` a 404 (as if the
model did not exist) while ``/ready`` stayed 200, and ``/models`` did not show the version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.factories import truncate_manifest
from tests.helpers import ADMIN, MODELS_DIR, attrition_example, bearer, copy_model, trace_of


@pytest.fixture
def newer_version_unreadable(
    attrition_store: Path, make_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    truncate_manifest(copy_model(attrition_store, "attrition-logreg", as_version="2"))
    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.fixture
def default_unreadable(
    attrition_store: Path, make_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    truncate_manifest(attrition_store / "attrition-logreg" / "1")
    with TestClient(create_app(make_settings())) as client:
        yield client


def _versions(client: TestClient, name: str) -> dict[str, dict[str, object]]:
    [model] = [m for m in client.get("/models").json()["models"] if m["name"] == name]
    return {version["version"]: version for version in model["versions"]}


def test_a_newer_unreadable_version_leaves_the_older_one_serving(
    newer_version_unreadable: TestClient,
) -> None:
    client = newer_version_unreadable
    served = client.post("/predict", json={"features": attrition_example()})
    assert served.status_code == 200, served.text
    assert (served.json()["model"], served.json()["version"]) == ("attrition-logreg", "1")
    assert client.get("/ready").status_code == 200

    pinned = client.post("/predict/attrition-logreg@2", json={"features": attrition_example()})
    assert pinned.status_code == 503, pinned.text
    assert pinned.json()["error"].startswith("attrition-logreg@2 cannot be read: ")
    assert "versions that can serve: 1" in pinned.json()["error"]
    assert trace_of(client, pinned.json()["request_id"]).outcome == "unavailable"

    versions = _versions(client, "attrition-logreg")
    assert versions["1"]["status"] == "loaded"  # it served the request above
    assert versions["2"]["status"] == "failed" and versions["2"]["error"]
    assert versions["2"]["framework"] is None
    listing = client.get("/models").json()
    assert [(u["model"], u["version"]) for u in listing["unreadable"]] == [
        ("attrition-logreg", "2")
    ]
    assert listing["models"][1]["latest_version"] == "1"  # the summary is the readable one's


def test_the_default_models_only_manifest_unreadable(default_unreadable: TestClient) -> None:
    client = default_unreadable
    response = client.post("/predict", json={"features": attrition_example()})
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error.startswith("the default model attrition-logreg cannot be read: ")
    assert error.endswith("; name a model or fix its manifest")
    assert "retry-after" in response.headers
    row = trace_of(client, response.json()["request_id"])
    assert (row.outcome, row.model_requested) == ("unavailable", "attrition-logreg")

    named = client.post("/predict/attrition-logreg", json={"features": attrition_example()})
    assert named.status_code == 503 and "cannot be read" in named.json()["error"]

    other = client.post("/predict/attrition-gbm", json={"features": attrition_example()})
    assert other.status_code == 200, other.text

    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["error"].startswith(
        "not ready: the default model attrition-logreg cannot be read: "
    )

    listing = client.get("/models").json()
    assert [m["name"] for m in listing["models"]] == ["attrition-gbm"]
    [unreadable] = listing["unreadable"]
    assert (unreadable["model"], unreadable["version"]) == ("attrition-logreg", "1")
    assert unreadable["error"] and unreadable["path"].endswith("attrition-logreg/1/manifest.json")


def test_a_default_that_is_not_registered_is_not_ready(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings(default_model="attrition-typo"))) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "attrition-typo" in ready.json()["error"]
        assert "fix DEFAULT_MODEL" in ready.json()["error"]
        # A request still gets the 404 it always did: the model it names does not exist.
        assert client.post("/predict", json={"features": {}}).status_code == 404


def test_a_reload_after_the_fix_is_ready_again(
    attrition_store: Path,
    make_settings: Callable[..., Settings],
) -> None:
    manifest = attrition_store / "attrition-logreg" / "1" / "manifest.json"
    truncate_manifest(manifest.parent)
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/ready").status_code == 503
        manifest.write_text((MODELS_DIR / "attrition-logreg/1/manifest.json").read_text())
        headers = bearer(client, ADMIN["username"], ADMIN["password"])
        reloaded = client.post("/models/reload", headers=headers)
        assert reloaded.status_code == 200 and reloaded.json()["unreadable"] == []
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json={"features": attrition_example()}).status_code == 200
