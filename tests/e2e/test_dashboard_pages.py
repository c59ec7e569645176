"""Every dashboard page under Streamlit's AppTest, against a real API process (ENV=test).

Two API processes serve the module, on free ports, over one temporary model store, each with
its own database: one that no test sends a prediction to, for the pages of a fresh service,
and one that has answered a few predictions (one of them invalid) before any test runs. So no
test depends on which ran before it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from streamlit.testing.v1 import AppTest

from tests.factories import audio_input, evaluation, make_manifest, write_model
from tests.helpers import ADMIN
from tests.live_server import ROOT, LiveServer, free_port, live_api, server_env

pytestmark = pytest.mark.e2e

APP = ROOT / "dashboard" / "app.py"
PAGES = [
    "views/overview.py",
    "views/models.py",
    "views/compare.py",
    "views/predictions.py",
    "views/try_model.py",
]
ATTRITION = ("attrition-logreg", "attrition-gbm")
RUN_TIMEOUT = 60  # a page's first run may evaluate models
TONE_TASK = "tones"
TONE_MODELS = ("tone-a", "tone-b")


def model_store(target: Path) -> Path:
    """The committed models and evaluation sets, and two three-label audio models."""
    store = target / "models"
    shutil.copytree(ROOT / "models", store)
    add_tone_models(store)
    return store


def add_tone_models(store: Path) -> None:
    """Audio models of a task with three labels (no ROC curve) and its evaluation clips.

    Served by the mock runtime (ENV=test), so they need no artifact.
    """
    for name in TONE_MODELS:
        write_model(
            store,
            make_manifest(
                name,
                "1",
                task=TONE_TASK,
                framework="torch-audio",
                input=audio_input(sample_rate=8000, clip_seconds=1.0, formats=["wav"]),
                labels=["low", "mid", "high"],
                metrics={"accuracy": 0.5},
                evaluations=[
                    evaluation(f"_evaluation/{TONE_TASK}", samples=3, metrics={"accuracy": 0.5})
                ],
            ),
        )
    clips = store / "_evaluation" / TONE_TASK
    clips.mkdir(parents=True)
    rows = ["file,label"]
    for step, label in enumerate(["low", "mid", "high"], start=1):
        tone = 0.5 * np.sin(np.arange(8000) * 0.05 * step).astype(np.float32)
        soundfile.write(str(clips / f"{label}.wav"), tone, 8000)
        rows.append(f"{label}.wav,{label}")
    (clips / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model store both APIs read (neither writes to it)."""
    return model_store(tmp_path_factory.mktemp("dashboard-models"))


@contextmanager
def running_api(workdir: Path, store: Path) -> Iterator[LiveServer]:
    env = server_env(store, workdir, ENV="test", DEFAULT_MODEL="attrition-logreg")
    with live_api(workdir, env) as server:
        yield server


def send_traffic(url: str) -> None:
    """One valid prediction from each attrition model, then one invalid request."""
    example = httpx.get(f"{url}/models/attrition-logreg").json()["manifest"]["input"]["example"]
    for model in ATTRITION:
        assert httpx.post(f"{url}/predict/{model}", json={"features": example}).is_success
    invalid = httpx.post(f"{url}/predict", json={"features": {"Age": "old"}})  # traced
    assert invalid.status_code == 422, invalid.text


@pytest.fixture(scope="module")
def fresh_api(tmp_path_factory: pytest.TempPathFactory, store: Path) -> Iterator[LiveServer]:
    """An API no test sends a prediction to: its history and counters stay empty."""
    with running_api(tmp_path_factory.mktemp("dashboard-fresh-api"), store) as server:
        yield server


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, store: Path) -> Iterator[LiveServer]:
    """An API that has answered ``send_traffic`` before the first test that uses it."""
    with running_api(tmp_path_factory.mktemp("dashboard-api"), store) as server:
        send_traffic(server.url)
        yield server


@pytest.fixture
def fresh_api_url(fresh_api: LiveServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("API_URL", fresh_api.url)
    return fresh_api.url


@pytest.fixture
def api_url(api: LiveServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("API_URL", api.url)
    return api.url


def open_page(page: str) -> AppTest:
    """The app run once, then switched to ``page`` and run again, with no exception."""
    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    app.run()
    if page != PAGES[0]:
        app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def texts(elements: Iterable[Any]) -> str:
    return "\n".join(str(element.value) for element in elements)


def plotly_charts(app: AppTest) -> int:
    return len(app.get("plotly_chart"))


def log_in(app: AppTest, username: str, password: str) -> AppTest:
    app.text_input[0].input(username)
    app.text_input[1].input(password)
    app.button[0].click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


# --- API down ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_says_when_the_api_is_down(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("API_URL", down)

    app = open_page(page)

    if page == "views/predictions.py":  # nothing to ask the API before the login
        log_in(app, ADMIN["username"], ADMIN["password"])
    assert "The API is down or unreachable" in texts(app.error)
    assert down in texts(app.error)
    assert f"API unreachable at {down}" in texts(app.sidebar.error)


# --- fresh service: no predictions yet ---------------------------------------------------


def test_overview_with_no_traffic_yet(fresh_api_url: str) -> None:
    app = open_page("views/overview.py")

    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Status"] == "ready"
    assert "log in" in texts(app.info)  # the traffic over time is a user's to read
    assert "No prediction requests since the API started" in texts(app.info)
    log_in(app, ADMIN["username"], ADMIN["password"])
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Requests, last hour"] == "0"
    assert metrics["Latency, mean"] == "no data"
    assert "No prediction request in the last hour" in texts(app.info)
    assert "default model:** `attrition-logreg`" in texts(app.markdown).lower()
    assert f"API up at {fresh_api_url}" in texts(app.sidebar.success)


def test_predictions_page_asks_for_a_login(fresh_api_url: str) -> None:
    app = open_page("views/predictions.py")

    assert "log in" in texts(app.info)
    assert [field.label for field in app.text_input] == ["Username", "Password"]
    assert plotly_charts(app) == 0


def test_a_wrong_password_is_refused(fresh_api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), ADMIN["username"], "not-the-password")

    assert "Wrong username or password" in texts(app.error)
    assert "api_token" not in app.session_state


def test_no_predictions_yet_after_login(fresh_api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), ADMIN["username"], ADMIN["password"])

    assert "No predictions yet" in texts(app.info)
    assert "Logged in as **admin**" in texts(app.sidebar.caption)


# --- models and comparison ---------------------------------------------------------------


def test_models_page_lists_the_registry_with_details(api_url: str) -> None:
    app = open_page("views/models.py")

    registry = app.dataframe[0].value
    assert set(ATTRITION) <= set(registry["model"])
    assert registry.set_index("model").loc["attrition-logreg", "default"] == "★"
    assert plotly_charts(app) >= 1
    app.selectbox(key="models_detail").select("attrition-gbm").run()
    assert not app.exception
    assert "Trained on:" in texts(app.markdown)


def test_compare_page_compares_the_attrition_models(api_url: str) -> None:
    app = open_page("views/compare.py")

    assert not app.error, texts(app.error)
    assert app.selectbox(key="compare_task").value == "employee-attrition"
    table = app.dataframe[0].value
    assert {"roc_auc", "accuracy", "latency_p50_ms"} <= set(table.index)
    assert {f"{name}@1" for name in ATTRITION} <= set(table.columns)
    assert "best" in table.columns
    # Quality bars, ROC, latency, two confusion matrices, per class, agreement, breakdown.
    assert plotly_charts(app) == 8
    assert "is best on" in texts(app.success) + texts(app.info)
    assert "mock runtimes" in texts(app.warning)


def test_compare_needs_two_models(api_url: str) -> None:
    app = open_page("views/compare.py")

    app.multiselect(key="compare_models:employee-attrition").set_value(["attrition-gbm"]).run()

    assert "Choose two or more models" in texts(app.info)
    assert plotly_charts(app) == 0


def test_compare_page_without_roc_for_more_than_two_labels(api_url: str) -> None:
    app = open_page("views/compare.py")

    app.selectbox(key="compare_task").select(TONE_TASK).run()

    assert not app.exception and not app.error, texts(app.error)
    table = app.dataframe[0].value
    assert "roc_auc" not in table.index and "macro_f1" in table.index
    assert plotly_charts(app) == 7  # as for two labels, less the ROC curves
    assert "serves another task" in texts(app.info) + texts(app.success)


def test_compare_page_handles_every_task(api_url: str) -> None:
    app = open_page("views/compare.py")

    for task in app.selectbox(key="compare_task").options:
        app.selectbox(key="compare_task").select(task).run()
        assert not app.exception, (task, [exception.value for exception in app.exception])
        assert not app.error, (task, texts(app.error))
        assert plotly_charts(app) >= 7, task


# --- making predictions, and reading back those of send_traffic --------------------------


def test_try_a_model_with_the_generated_form(api_url: str) -> None:
    app = open_page("views/try_model.py")
    assert app.selectbox(key="try_model").value == "attrition-logreg"
    assert len(app.number_input) + len(app.selectbox) > 30  # one widget per feature

    app.button[0].click().run()

    assert not app.exception
    assert "from `attrition-logreg@1`" in texts(app.success)
    assert plotly_charts(app) == 1


def test_the_form_states_the_range_and_shows_the_apis_refusal(api_url: str) -> None:
    app = open_page("views/try_model.py")

    age = next(widget for widget in app.number_input if widget.label == "Age")
    assert age.value == 24 and "from 18 to 100" in age.help
    age.set_value(7)
    app.button[0].click().run()

    assert not app.exception
    assert "Age" in texts(app.error) and "between 18 and 100" in texts(app.error)


def test_history_with_traffic(api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), ADMIN["username"], ADMIN["password"])

    metrics = {metric.label: metric.value for metric in app.metric}
    assert int(metrics["Matching requests"]) >= 3
    assert int(metrics["Failed (shown)"]) >= 1
    assert plotly_charts(app) == 4
    recent = app.dataframe[0].value
    assert {"attrition-gbm@1", "attrition-logreg@1"} <= set(recent["model"])


def test_history_filters_by_outcome(api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), ADMIN["username"], ADMIN["password"])

    app.sidebar.selectbox(key="history_outcome").select("invalid_input").run()

    assert not app.exception
    assert set(app.dataframe[0].value["outcome"]) == {"invalid_input"}


def test_logging_out_shows_the_login_again(api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), ADMIN["username"], ADMIN["password"])

    app.sidebar.button[0].click().run()

    assert "api_token" not in app.session_state
    assert [field.label for field in app.text_input] == ["Username", "Password"]


def test_overview_counts_the_traffic_of_each_window(api_url: str) -> None:
    app = log_in(open_page("views/overview.py"), ADMIN["username"], ADMIN["password"])

    metrics = {metric.label: metric.value for metric in app.metric}
    assert int(metrics["Requests, last hour"]) >= 3 and int(metrics["Errors"]) >= 1
    assert metrics["Latency, mean"] != "no data"
    app.radio(key="overview_window").set_value("week").run()
    assert not app.exception
    assert int({m.label: m.value for m in app.metric}["Requests, last week"]) >= 3
    # Requests over time, latency over time (from /traffic), and by outcome (from /metrics).
    assert plotly_charts(app) == 3
