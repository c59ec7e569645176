"""Auth (tokens, roles) on the admin routes and the prediction history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.helpers import ADMIN, VIEWER, attrition_example, bearer

VIEWER_URL = f"/users/{VIEWER['username']}"
ADMIN_ROUTES = [
    ("post", "/models/attrition-gbm/load"),
    ("post", "/models/attrition-gbm/unload"),
    ("post", "/models/reload"),
    ("get", "/users"),
]


def test_wrong_password_gets_no_token(client: TestClient) -> None:
    response = client.post("/auth/token", data={"username": "admin", "password": "nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    unknown = client.post("/auth/token", data={"username": "ghost", "password": "nope"})
    assert unknown.status_code == 401


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_need_a_token(client: TestClient, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 401
    assert "authentication required" in response.json()["error"]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_a_viewer(
    client: TestClient, viewer_headers: dict[str, str], method: str, path: str
) -> None:
    response = getattr(client, method)(path, headers=viewer_headers)
    assert response.status_code == 403
    assert "needs an admin" in response.json()["error"]


def test_bad_and_expired_tokens_are_401(client: TestClient) -> None:
    garbage = client.get("/predictions", headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401
    assert garbage.json()["error"].startswith("invalid token: not a JWT")
    forged = jwt.encode({"sub": "admin", "exp": datetime.now(UTC) + timedelta(hours=1)}, "x" * 32)
    forged_response = client.get("/predictions", headers={"Authorization": f"Bearer {forged}"})
    assert forged_response.status_code == 401
    secret = client.app.state.settings.jwt_secret  # type: ignore[attr-defined]
    expired = jwt.encode({"sub": "admin", "exp": datetime.now(UTC) - timedelta(minutes=1)}, secret)
    response = client.get("/predictions", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and "expired" in response.json()["error"]


def test_admin_loads_unloads_and_reloads(client: TestClient, admin_headers: dict[str, str]) -> None:
    loaded = client.post("/models/attrition-gbm/load", headers=admin_headers)
    assert loaded.status_code == 200 and loaded.json()["status"] == "loaded"
    assert client.get("/models/attrition-gbm").json()["status"] == "loaded"
    unloaded = client.post("/models/attrition-gbm/unload", headers=admin_headers)
    assert unloaded.json()["message"] == "unloaded"
    reloaded = client.post("/models/reload", headers=admin_headers)
    assert reloaded.status_code == 200 and len(reloaded.json()["models"]) == 2
    assert client.post("/models/nope/load", headers=admin_headers).status_code == 404


def test_duplicate_user_is_409(client: TestClient, admin_headers: dict[str, str]) -> None:
    body = {"username": ADMIN["username"], "password": "another-pass", "role": "viewer"}
    response = client.post("/users", json=body, headers=admin_headers)
    assert response.status_code == 409


def test_history_needs_a_token_and_filters(
    client: TestClient, viewer_headers: dict[str, str]
) -> None:
    assert client.get("/predictions").status_code == 401
    ok = client.post("/predict", json={"features": attrition_example()}).json()
    client.post("/predict/attrition-gbm", json={"features": attrition_example()})
    bad = client.post("/predict", json={"features": {}}).json()
    page = client.get("/predictions", headers=viewer_headers).json()
    assert page["total"] == 3
    assert page["items"][-1]["request_id"] == ok["request_id"]  # newest first
    invalid = client.get(
        "/predictions", params={"outcome": "invalid_input"}, headers=viewer_headers
    ).json()
    assert [item["request_id"] for item in invalid["items"]] == [bad["request_id"]]
    gbm = client.get("/predictions", params={"model": "attrition-gbm@1"}, headers=viewer_headers)
    assert gbm.json()["total"] == 1
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    later = client.get("/predictions", params={"since": future}, headers=viewer_headers)
    assert later.json()["total"] == 0
    second_page = client.get(
        "/predictions", params={"limit": 1, "offset": 1}, headers=viewer_headers
    ).json()
    assert len(second_page["items"]) == 1 and second_page["total"] == 3


def test_one_prediction_by_request_id(client: TestClient, viewer_headers: dict[str, str]) -> None:
    answer = client.post("/predict", json={"features": attrition_example()}).json()
    record = client.get(f"/predictions/{answer['request_id']}", headers=viewer_headers).json()
    assert record["label"] == answer["label"] and record["input"] == attrition_example()
    assert record["received_at"].endswith(("+00:00", "Z"))
    missing = client.get("/predictions/nope", headers=viewer_headers)
    assert missing.status_code == 404


def test_bad_history_filter_is_422(client: TestClient, viewer_headers: dict[str, str]) -> None:
    response = client.get("/predictions", params={"outcome": "maybe"}, headers=viewer_headers)
    assert response.status_code == 422 and response.json()["detail"][0]["field"].endswith("outcome")


def test_history_paging_out_of_range_is_422(
    client: TestClient, viewer_headers: dict[str, str]
) -> None:
    for params in ({"offset": 10**20}, {"limit": 0}, {"since": "yesterday"}):
        response = client.get("/predictions", params=params, headers=viewer_headers)
        assert response.status_code == 422, (params, response.text)


def test_an_oversized_login_form_is_413(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(max_body_bytes=1024))) as client:
        response = client.post("/auth/token", data={"username": "a", "password": "x" * 5000})
    assert response.status_code == 413 and "MAX_BODY_BYTES" in response.json()["error"]


def test_admin_changes_role_disables_and_resets_a_user(
    client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    assert client.get("/users", headers=viewer_headers).status_code == 403
    promoted = client.patch(VIEWER_URL, json={"role": "admin"}, headers=admin_headers)
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert client.get("/users", headers=viewer_headers).status_code == 200  # same token
    disabled = client.patch(VIEWER_URL, json={"is_active": False}, headers=admin_headers)
    assert disabled.json()["is_active"] is False
    assert client.get("/predictions", headers=viewer_headers).status_code == 401
    login = client.post("/auth/token", data=VIEWER)
    assert login.status_code == 401
    client.patch(
        VIEWER_URL, json={"is_active": True, "password": "new-pass-123"}, headers=admin_headers
    )
    assert bearer(client, VIEWER["username"], "new-pass-123")
    assert (
        client.patch("/users/ghost", json={"role": "admin"}, headers=admin_headers).status_code
        == 404
    )
    itself = client.patch("/users/admin", json={"is_active": False}, headers=admin_headers)
    assert itself.status_code == 409
