"""Promotion over HTTP (one worker, mock runtimes): aliases, rollback, default, history, auth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.helpers import ADMIN, VIEWER, attrition_example, bearer, copy_model, stored_trace

MODEL = "attrition-logreg"
ROW = {"features": attrition_example()}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite: these tables on PostgreSQL are tested by test_serving_state and the e2e test."""
    return f"sqlite:///{tmp_path / 'traces.db'}"


@pytest.fixture
def client(attrition_store: Path, make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """attrition-logreg 1 and 2, attrition-gbm 1; the fallback is attrition-gbm."""
    copy_model(attrition_store, MODEL, as_version="2")
    with TestClient(create_app(make_settings(fallback_model="attrition-gbm"))) as test_client:
        yield test_client


def served(client: TestClient, path: str = f"/predict/{MODEL}") -> str:
    response = client.post(path, json=ROW)
    assert response.status_code == 200, response.text
    body = response.json()
    return f"{body['model']}@{body['version']}"


def put_alias(
    client: TestClient, headers: dict[str, str], alias: str, version: str, model: str = MODEL
) -> Any:
    return client.put(
        f"/models/{model}/aliases/{alias}", json={"version": version}, headers=headers
    )


def test_the_champion_is_what_the_name_serves(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert served(client) == f"{MODEL}@2", "no champion: the latest"

    response = put_alias(client, admin_headers, "champion", "1")

    assert response.status_code == 200
    assert response.json() == {
        "model": MODEL,
        "alias": "champion",
        "version": "1",
        "previous_version": None,
    }
    assert served(client) == f"{MODEL}@1"
    assert served(client, "/predict") == f"{MODEL}@1", "the default model is a bare name"
    assert served(client, f"/predict/{MODEL}@champion") == f"{MODEL}@1"
    assert served(client, f"/predict/{MODEL}@2") == f"{MODEL}@2"
    summary = client.get(f"/models/{MODEL}").json()
    assert (summary["aliases"], summary["serving_version"]) == ({"champion": "1"}, "1")
    assert [v["aliases"] for v in summary["versions"]] == [["champion"], []]
    [listed] = [m for m in client.get("/models").json()["models"] if m["name"] == MODEL]
    assert listed["aliases"] == {"champion": "1"}


def test_the_trace_keeps_the_reference_asked_and_the_version_served(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    put_alias(client, admin_headers, "challenger", "1")
    body = client.post(f"/predict/{MODEL}@challenger", json=ROW).json()
    row = stored_trace(client.app.state.engine, body["request_id"])  # type: ignore[attr-defined]
    assert (row.model_requested, row.model_name, row.model_version) == (
        f"{MODEL}@challenger",
        MODEL,
        "1",
    )


def test_oip_takes_an_alias_as_the_version_or_in_the_name(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    put_alias(client, admin_headers, "challenger", "1")
    for path in (f"/v2/models/{MODEL}/versions/challenger", f"/v2/models/{MODEL}@challenger"):
        assert client.get(f"{path}/ready").json() == {"name": MODEL, "ready": True}
        assert client.get(path).json()["name"] == MODEL


def test_rollback_goes_back_one_change_at_a_time_then_409(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    put_alias(client, admin_headers, "champion", "1")
    put_alias(client, admin_headers, "champion", "2")

    back = client.post(f"/models/{MODEL}/rollback", headers=admin_headers)

    assert back.status_code == 200
    assert (back.json()["version"], back.json()["previous_version"]) == ("1", "2")
    assert served(client) == f"{MODEL}@1"
    again = client.post(f"/models/{MODEL}/rollback", headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["error"] == f"{MODEL}@champion has no earlier version to roll back to"


def test_deleting_the_champion_serves_the_latest_again(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    put_alias(client, admin_headers, "champion", "1")
    deleted = client.delete(f"/models/{MODEL}/aliases/champion", headers=admin_headers)
    assert deleted.status_code == 200 and deleted.json()["version"] is None
    assert served(client) == f"{MODEL}@2"
    missing = client.delete(f"/models/{MODEL}/aliases/champion", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.json()["error"] == f"model '{MODEL}' has no alias 'champion' (aliases: none)"


BAD_ALIAS_CHANGES = [
    ("nope", "champion", "1", 404, "model 'nope' is not registered"),
    (MODEL, "champion", "9", 404, "has no version '9' (versions: 1, 2)"),
    (MODEL, "Best!", "1", 422, "invalid alias 'Best!': a lowercase letter"),
    (MODEL, "v3", "1", 422, "invalid alias 'v3': it reads as a version"),
]


def test_a_bad_alias_change_says_what_is_wrong(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for model, alias, version, status, message in BAD_ALIAS_CHANGES:
        response = put_alias(client, admin_headers, alias, version, model)
        assert response.status_code == status, (alias, response.text)
        assert message in response.json()["error"]
        if status == 422:
            assert response.json()["detail"][0]["field"] == "alias"


def test_the_default_and_fallback_models_change_at_runtime(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.put("/default-model", json={"model": "attrition-gbm"}, headers=admin_headers)
    assert response.json() == {"default_model": "attrition-gbm", "previous": MODEL}
    assert served(client, "/predict") == "attrition-gbm@1"
    assert client.get("/models").json()["default_model"] == "attrition-gbm"
    assert client.get("/metadata").json()["default_model"] == "attrition-gbm"
    bad = client.put("/default-model", json={"model": "Bad Ref"}, headers=admin_headers)
    unknown = client.put("/default-model", json={"model": f"{MODEL}@x"}, headers=admin_headers)
    assert (bad.status_code, bad.json()["detail"][0]["field"]) == (422, "model")
    assert unknown.status_code == 404
    fallbacks = client.put(
        "/fallback-models", json={"models": [f"{MODEL}@1"]}, headers=admin_headers
    )
    assert fallbacks.json() == {"fallback_models": [f"{MODEL}@1"], "previous": ["attrition-gbm"]}
    assert client.get("/models").json()["fallback_models"] == [f"{MODEL}@1"]


def test_the_database_wins_over_the_settings_after_the_first_start(
    client: TestClient, admin_headers: dict[str, str], make_settings: Callable[..., Settings]
) -> None:
    put_alias(client, admin_headers, "champion", "1")
    client.put("/default-model", json={"model": "attrition-gbm"}, headers=admin_headers)

    settings = make_settings(default_model=MODEL, fallback_model="")
    with TestClient(create_app(settings)) as restarted:
        assert served(restarted, "/predict") == "attrition-gbm@1"
        assert served(restarted) == f"{MODEL}@1"
        assert restarted.get("/models").json()["fallback_models"] == ["attrition-gbm"]


def test_the_history_says_who_changed_what_and_viewers_read_it(
    client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    put_alias(client, admin_headers, "champion", "1")
    put_alias(client, admin_headers, "champion", "2")
    client.post(f"/models/{MODEL}/rollback", headers=admin_headers)
    client.put("/default-model", json={"model": "attrition-gbm"}, headers=admin_headers)

    history = client.get(f"/models/{MODEL}/history", headers=viewer_headers)

    assert history.status_code == 200
    items = history.json()["items"]
    assert [(i["action"], i["alias"], i["from_version"], i["to_version"]) for i in items] == [
        ("default_model", None, MODEL, "attrition-gbm"),
        ("rollback", "champion", "2", "1"),
        ("alias_set", "champion", "1", "2"),
        ("alias_set", "champion", None, "1"),
    ]
    assert {item["actor"] for item in items} == {ADMIN["username"]}
    assert all(item["changed_at"].endswith("Z") for item in items)
    assert client.get("/history", headers=viewer_headers).json()["total"] == 4
    assert client.get(f"/models/{MODEL}/history").status_code == 401
    assert client.get("/models/nope/history", headers=viewer_headers).status_code == 404


def test_viewers_change_nothing(client: TestClient, viewer_headers: dict[str, str]) -> None:
    refused = [
        put_alias(client, viewer_headers, "champion", "1"),
        client.delete(f"/models/{MODEL}/aliases/champion", headers=viewer_headers),
        client.post(f"/models/{MODEL}/rollback", headers=viewer_headers),
        client.put("/default-model", json={"model": MODEL}, headers=viewer_headers),
        client.put("/fallback-models", json={"models": []}, headers=viewer_headers),
    ]
    assert [response.status_code for response in refused] == [403] * 5
    assert f"user '{VIEWER['username']}' is a viewer" in refused[0].json()["error"]
    assert client.get(f"/models/{MODEL}/history", headers=viewer_headers).json()["total"] == 0


def test_load_and_unload_are_recorded_for_every_worker(client: TestClient) -> None:
    # The actor is the token's user as stored, whatever the case it logged in with.
    admin_headers = bearer(client, ADMIN["username"].upper(), ADMIN["password"])
    loaded = client.post(f"/models/{MODEL}/load?version=1", headers=admin_headers)
    assert loaded.json() == {"model": f"{MODEL}@1", "status": "loaded", "message": "loaded"}
    unloaded = client.post(f"/models/{MODEL}/unload?version=1", headers=admin_headers)
    assert unloaded.json()["message"] == "unloaded"
    assert client.post("/models/reload", headers=admin_headers).status_code == 200
    history = client.get("/history", headers=admin_headers).json()["items"]
    assert [(i["action"], i["model"], i["to_version"]) for i in history] == [
        ("reload", None, None),
        ("unload", MODEL, "1"),
        ("load", MODEL, "1"),
    ]
    assert {item["actor"] for item in history} == {ADMIN["username"]}


def test_the_prediction_history_takes_an_alias(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    put_alias(client, admin_headers, "challenger", "1")
    served(client, f"/predict/{MODEL}@1")
    served(client, f"/predict/{MODEL}@2")
    page = client.get(
        "/predictions", params={"model": f"{MODEL}@challenger"}, headers=admin_headers
    ).json()
    assert [item["model_version"] for item in page["items"]] == ["1"]
