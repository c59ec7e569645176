"""Issue 9's auth findings: login throttle, token revocation, strict tokens, names, DB outages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.main import create_app
from api.security import LoginGuard, PasswordHasher
from api.settings import Settings
from db.engine import make_engine
from tests.helpers import ADMIN, VIEWER, FakeClock, attrition_example, bearer

# Nothing listens on port 1: every connection is refused at once.
DEAD_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=2"
ANOTHER_CLIENT = ("10.9.8.7", 50000)
VIEWER_URL = f"/users/{VIEWER['username']}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def guard_app(client: TestClient, clock: FakeClock, **overrides: Any) -> None:
    """Give the client's app a login guard that reads ``clock`` (and these settings)."""
    settings = client.app.state.settings.model_copy(update=overrides)  # type: ignore[attr-defined]
    client.app.state.login_guard = LoginGuard.from_settings(settings, clock=clock)  # type: ignore[attr-defined]


@pytest.fixture
def guarded(client: TestClient, clock: FakeClock) -> TestClient:
    guard_app(client, clock)
    return client


def log_in(client: TestClient, username: str, password: str) -> Any:
    return client.post("/auth/token", data={"username": username, "password": password})


def other_client(client: TestClient) -> TestClient:
    """A client from another address, on the same (started) app."""
    return TestClient(client.app, client=ANOTHER_CLIENT)


def test_the_sixth_wrong_password_for_a_user_is_429(guarded: TestClient, clock: FakeClock) -> None:
    for _ in range(5):
        assert log_in(guarded, "admin", "wrong").status_code == 401
    throttled = log_in(guarded, "admin", "wrong")
    assert throttled.status_code == 429
    assert "too many failed logins" in throttled.json()["error"]
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    # The right password waits too, or the throttle would tell it apart.
    assert log_in(guarded, "admin", ADMIN["password"]).status_code == 429
    clock.advance(61)
    assert log_in(guarded, "admin", ADMIN["password"]).status_code == 200


def test_a_throttled_user_does_not_block_others_nor_predictions(
    guarded: TestClient, viewer_headers: dict[str, str]
) -> None:
    for _ in range(6):
        log_in(guarded, "admin", "wrong")
    assert log_in(guarded, "admin", "wrong").status_code == 429
    assert log_in(guarded, **VIEWER).status_code == 200
    # The name is throttled from every address: an attacker has many.
    assert log_in(other_client(guarded), "admin", ADMIN["password"]).status_code == 429
    assert guarded.post("/predict", json={"features": attrition_example()}).status_code == 200


def test_a_client_with_too_many_failures_is_429_and_others_still_log_in(
    guarded: TestClient, clock: FakeClock, viewer_headers: dict[str, str]
) -> None:
    guard_app(guarded, clock, login_failures_per_client=6)
    for attempt in range(6):
        assert log_in(guarded, f"ghost{attempt % 3}", "wrong").status_code == 401
    throttled = log_in(guarded, **VIEWER)
    assert throttled.status_code == 429 and "from this address" in throttled.json()["error"]
    assert "retry-after" in throttled.headers
    assert log_in(other_client(guarded), **VIEWER).status_code == 200
    assert guarded.post("/predict", json={"features": attrition_example()}).status_code == 200


def test_a_successful_login_resets_the_users_count(guarded: TestClient) -> None:
    for _ in range(4):
        assert log_in(guarded, "admin", "wrong").status_code == 401
    assert log_in(guarded, "admin", ADMIN["password"]).status_code == 200
    for _ in range(4):
        assert log_in(guarded, "admin", "wrong").status_code == 401


def test_a_full_password_hasher_answers_503_at_once_and_predictions_go_on(
    client: TestClient, clock: FakeClock
) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    guard = LoginGuard.from_settings(settings, clock=clock)
    guard.hasher = PasswordHasher(threads=1, queue=0)
    client.app.state.login_guard = guard  # type: ignore[attr-defined]
    release = threading.Event()
    busy = guard.hasher.submit(release.wait, 30)
    try:
        refused = log_in(client, "admin", ADMIN["password"])
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "password" in refused.json()["error"]
        assert client.post("/predict", json={"features": attrition_example()}).status_code == 200
    finally:
        release.set()
        busy.result(timeout=30)
    assert log_in(client, "admin", ADMIN["password"]).status_code == 200


def test_password_hashing_runs_on_its_own_thread(guarded: TestClient) -> None:
    guard = guarded.app.state.login_guard  # type: ignore[attr-defined]
    name = guard.hasher.submit(lambda: threading.current_thread().name).result(timeout=30)
    assert name.startswith("password-hash")


def test_a_password_change_revokes_the_users_tokens(
    guarded: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    assert guarded.get("/auth/me", headers=viewer_headers).status_code == 200
    changed = guarded.patch(VIEWER_URL, json={"password": "new-pass-123"}, headers=admin_headers)
    assert changed.status_code == 200
    old = guarded.get("/auth/me", headers=viewer_headers)
    assert old.status_code == 401 and "log in again" in old.json()["error"]
    new_token = bearer(guarded, VIEWER["username"], "new-pass-123")
    assert guarded.get("/auth/me", headers=new_token).status_code == 200


def test_disabling_revokes_the_users_tokens_for_good(
    guarded: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    guarded.patch(VIEWER_URL, json={"is_active": False}, headers=admin_headers)
    assert guarded.get("/auth/me", headers=viewer_headers).status_code == 401
    guarded.patch(VIEWER_URL, json={"is_active": True}, headers=admin_headers)
    # Re-enabled: the old token stays revoked, the viewer logs in again.
    assert guarded.get("/auth/me", headers=viewer_headers).status_code == 401
    assert guarded.get("/auth/me", headers=bearer(guarded, **VIEWER)).status_code == 200


def test_a_role_change_keeps_the_token(
    guarded: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    guarded.patch(VIEWER_URL, json={"role": "admin"}, headers=admin_headers)
    assert guarded.get("/users", headers=viewer_headers).status_code == 200


def _token(client: TestClient, **claims: Any) -> dict[str, str]:
    secret = client.app.state.settings.jwt_secret  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {jwt.encode(claims, secret)}"}


def test_tokens_without_exp_iat_or_version_are_401(guarded: TestClient) -> None:
    now = datetime.now(UTC)
    full = {"sub": "admin", "iat": now, "exp": now + timedelta(minutes=5), "ver": 0}
    assert guarded.get("/auth/me", headers=_token(guarded, **full)).status_code == 200
    for claim in ("exp", "iat", "ver", "sub"):
        claims = {key: value for key, value in full.items() if key != claim}
        response = guarded.get("/auth/me", headers=_token(guarded, **claims))
        assert response.status_code == 401, claim
        assert "invalid token" in response.json()["error"]


def test_usernames_are_case_insensitive(guarded: TestClient, admin_headers: dict[str, str]) -> None:
    created = guarded.post(
        "/users",
        json={"username": "Vera", "password": "viewer-pass-1", "role": "viewer"},
        headers=admin_headers,
    )
    assert created.status_code == 201 and created.json()["username"] == "vera"
    twin = guarded.post(
        "/users",
        json={"username": "VERA", "password": "another-pass", "role": "admin"},
        headers=admin_headers,
    )
    assert twin.status_code == 409
    me = guarded.get("/auth/me", headers=bearer(guarded, "vEra", "viewer-pass-1"))
    assert me.json()["username"] == "vera"
    assert (
        guarded.get("/auth/me", headers=bearer(guarded, "ADMIN", ADMIN["password"])).json()[
            "username"
        ]
        == "admin"
    )
    patched = guarded.patch("/users/VERA", json={"role": "admin"}, headers=admin_headers)
    assert patched.status_code == 200 and patched.json()["role"] == "admin"


def test_wrong_passwords_for_admin_and_ADMIN_share_a_count(guarded: TestClient) -> None:
    for name in ("admin", "Admin", "ADMIN", "aDmin", "admiN"):
        assert log_in(guarded, name, "wrong").status_code == 401
    assert log_in(guarded, "AdMiN", "wrong").status_code == 429


@dataclass
class Outage:
    headers: dict[str, str]
    """An admin token's, issued before the outage."""
    working_engine: Engine

    def end(self, client: TestClient) -> None:
        client.app.state.engine = self.working_engine  # type: ignore[attr-defined]


@pytest.fixture
def outage(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Outage]:
    """The app's database is unreachable from now on (until the test ends it)."""
    dead = make_engine(DEAD_DATABASE_URL)
    outage = Outage(admin_headers, client.app.state.engine)  # type: ignore[attr-defined]
    client.app.state.engine = dead  # type: ignore[attr-defined]
    yield outage
    outage.end(client)
    dead.dispose()


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/auth/token"), ("get", "/auth/me"), ("get", "/predictions"), ("get", "/users")],
)
def test_a_database_outage_is_503_with_retry_after(
    client: TestClient,
    outage: Outage,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
) -> None:
    kwargs: dict[str, Any] = {"headers": outage.headers}
    if path == "/auth/token":
        kwargs = {"data": {"username": "admin", "password": ADMIN["password"]}}
    with caplog.at_level(logging.WARNING):
        responses = [getattr(client, method)(path, **kwargs) for _ in range(3)]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert "database" in response.json()["error"]
    assert not [record for record in caplog.records if record.exc_info]  # no traceback
    assert len([r for r in caplog.records if "database" in r.getMessage()]) <= 1


def test_after_the_outage_logins_were_not_counted_as_failures(
    client: TestClient, outage: Outage, clock: FakeClock
) -> None:
    guard_app(client, clock)
    for _ in range(6):
        assert log_in(client, "admin", ADMIN["password"]).status_code == 503
    outage.end(client)
    assert log_in(client, "admin", ADMIN["password"]).status_code == 200


def test_a_fresh_app_makes_its_own_guard(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(login_failures_per_user=1))) as client:
        assert log_in(client, "admin", "wrong").status_code == 401
        assert log_in(client, "admin", "wrong").status_code == 429
