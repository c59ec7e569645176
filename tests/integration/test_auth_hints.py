"""The README's auth steps after a plain ``make run`` (no admin yet): each error says why."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.manage import main as manage
from api.settings import Settings


def test_a_login_with_no_user_at_all_says_how_to_make_one(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(admin_username=None, admin_password=None)
    with TestClient(create_app(settings)) as client:
        response = client.post("/auth/token", data={"username": "admin", "password": "x" * 12})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error.startswith("wrong username or password")
    assert "no user exists yet" in error and "ADMIN_USERNAME" in error and "create-user" in error


def test_a_wrong_password_does_not_say_whether_users_exist(client: TestClient) -> None:
    response = client.post("/auth/token", data={"username": "admin", "password": "x" * 12})
    assert response.json()["error"] == "wrong username or password"


@pytest.mark.parametrize("token", ["null", "not.a.jwt", ""])
def test_a_token_that_is_no_jwt_says_the_login_failed(client: TestClient, token: str) -> None:
    response = client.get("/predictions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert "POST /auth/token" in error, error


def test_a_token_of_another_key_says_a_restart_changes_it(client: TestClient) -> None:
    forged = jwt.encode({"sub": "admin", "exp": 4_000_000_000}, "y" * 32)
    response = client.get("/predictions", headers={"Authorization": f"Bearer {forged}"})
    error = response.json()["error"]
    assert error.startswith("invalid token") and "SECRET_KEY" in error, error


def test_create_user_asks_for_the_password_twice(
    monkeypatch: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENV", "test")
    prompts: list[str] = []
    answers = iter(["first password", "other password", "same password", "same password"])

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("api.manage.getpass.getpass", getpass)
    assert manage(["create-user", "alice"]) == 2
    assert "do not match" in capsys.readouterr().err
    assert manage(["create-user", "alice"]) == 0
    assert prompts == ["Password: ", "Password again: "] * 2
