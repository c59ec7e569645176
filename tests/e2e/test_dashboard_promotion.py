"""The dashboard's promotion (Compare) and its aliases and history (Models), under AppTest,
against a real API process of its own (ENV=test), which these tests change."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import TOKEN_KEY, USERNAME_KEY
from tests.helpers import ADMIN, MODELS_DIR, VIEWER, copy_model
from tests.live_server import LiveServer, live_api, server_env

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
MODEL = "attrition-logreg"
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """attrition-logreg 1 and 2, attrition-gbm 1, their held-out set; a viewer besides the admin."""
    workdir = tmp_path_factory.mktemp("promotion-api")
    store = workdir / "models"
    copy_model(store, MODEL)
    copy_model(store, MODEL, as_version="2")
    copy_model(store, "attrition-gbm")
    evaluation = Path("_evaluation") / "employee-attrition"
    shutil.copytree(MODELS_DIR / evaluation, store / evaluation)
    with live_api(workdir, server_env(store, workdir, ENV="test")) as server:
        admin = {"Authorization": f"Bearer {token(server.url, ADMIN)}"}
        created = httpx.post(
            f"{server.url}/users", json={**VIEWER, "role": "viewer"}, headers=admin
        )
        assert created.status_code == 201, created.text
        yield server


@pytest.fixture
def api_url(api: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("API_URL", api.url)
    yield api.url
    admin = {"Authorization": f"Bearer {token(api.url, ADMIN)}"}
    httpx.delete(f"{api.url}/models/{MODEL}/aliases/champion", headers=admin)


def token(url: str, user: dict[str, str]) -> str:
    response = httpx.post(f"{url}/auth/token", data=user)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def open_page(page: str, url: str, user: dict[str, str] | None = None) -> AppTest:
    """``page`` run, logged in as ``user`` when given (as the login form leaves it)."""
    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    if user is not None:
        app.session_state[TOKEN_KEY] = token(url, user)
        app.session_state[USERNAME_KEY] = user["username"]
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def button(app: AppTest, label: str) -> int:
    return next(i for i, b in enumerate(app.button) if b.label == label)


def texts(app: AppTest, kind: str) -> str:
    return "\n".join(str(element.value) for element in app.get(kind))


def messages(app: AppTest) -> str:
    """Every success, info, warning and error shown."""
    return "\n".join(texts(app, kind) for kind in ("success", "info", "warning", "error"))


def test_compare_asks_for_a_login_before_promoting(api_url: str) -> None:
    app = open_page("views/compare.py", api_url)
    assert "Log in as an admin to promote" in messages(app)
    assert [field.label for field in app.text_input] == ["Username", "Password"]


def test_an_admin_promotes_the_leader_of_compare(api_url: str) -> None:
    app = open_page("views/compare.py", api_url, ADMIN)
    label = f"Make {MODEL}@2 the champion of {MODEL}"  # mock runtimes tie: the default leads

    app.button[button(app, label)].click().run()

    assert not app.exception
    assert f"`{MODEL}` serves version 2 on every worker" in messages(app)
    assert httpx.get(f"{api_url}/models/{MODEL}").json()["aliases"] == {"champion": "2"}


def test_a_viewer_cannot_promote(api_url: str) -> None:
    app = open_page("views/compare.py", api_url, VIEWER)

    app.button[button(app, f"Make {MODEL}@2 the champion of {MODEL}")].click().run()

    assert "(HTTP 403)" in messages(app)
    assert httpx.get(f"{api_url}/models/{MODEL}").json()["aliases"] == {}


def test_compare_takes_other_versions_too(api_url: str) -> None:
    app = open_page("views/compare.py", api_url)

    app.multiselect(key="compare_versions:employee-attrition").set_value([f"{MODEL}@1"]).run()

    assert not app.exception
    assert {f"{MODEL}@1", f"{MODEL}@2", "attrition-gbm@1"} <= set(app.dataframe[0].value.columns)


def test_models_page_shows_aliases_and_history(api_url: str) -> None:
    admin = {"Authorization": f"Bearer {token(api_url, ADMIN)}"}
    httpx.put(f"{api_url}/models/{MODEL}/aliases/champion", json={"version": "1"}, headers=admin)

    app = open_page("views/models.py", api_url, VIEWER)

    registry = app.dataframe[0].value.set_index("model")
    assert (registry.loc[MODEL, "aliases"], registry.loc[MODEL, "serving"]) == ("champion → 1", "1")
    app.selectbox(key="models_detail").select(MODEL).run()
    assert f"`{MODEL}` serves version **1** (its champion)" in texts(app, "markdown")
    history = app.dataframe[-1].value
    assert list(history["action"])[0] == "alias_set"
    assert list(history["to_version"])[0] == "1" and list(history["actor"])[0] == "admin"
