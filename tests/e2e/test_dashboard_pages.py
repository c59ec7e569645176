"""Every dashboard page under Streamlit's AppTest, against a real API process (ENV=test).

The API runs once for the module on a free port with a temporary database and model store.
Tests that need an empty prediction history come before the ones that make predictions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from streamlit.testing.v1 import AppTest

from tests.live_server import ROOT, LiveServer, free_port, live_api

pytestmark = pytest.mark.e2e

APP = ROOT / "dashboard" / "app.py"
PAGES = ["views/overview.py", "views/models.py", "views/compare.py", "views/predictions.py",
         "views/try_model.py"]
ADMIN = ("admin", "admin-password-123")
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
    manifest = json.loads((store / "attrition-logreg" / "1" / "manifest.json").read_text())
    for name in TONE_MODELS:
        (store / name / "1").mkdir(parents=True)
        (store / name / "1" / "manifest.json").write_text(json.dumps({
            **manifest, "name": name, "task": TONE_TASK, "framework": "torch-audio",
            "input": {"kind": "audio", "sample_rate": 8000, "clip_seconds": 1.0,
                      "formats": ["wav"]},
            "output": {"labels": ["low", "mid", "high"]},
            "metrics": {"accuracy": 0.5},
            "evaluations": [{"dataset": f"_evaluation/{TONE_TASK}", "samples": 3,
                             "metrics": {"accuracy": 0.5}}],
        }))
    clips = store / "_evaluation" / TONE_TASK
    clips.mkdir(parents=True)
    rows = ["file,label"]
    for step, label in enumerate(["low", "mid", "high"], start=1):
        tone = 0.5 * np.sin(np.arange(8000) * 0.05 * step).astype(np.float32)
        soundfile.write(str(clips / f"{label}.wav"), tone, 8000)
        rows.append(f"{label}.wav,{label}")
    (clips / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("dashboard-api")
    env = {
        "ENV": "test",
        "DATABASE_URL": f"sqlite:///{workdir / 'traces.db'}",
        "MODELS_DIR": str(model_store(workdir)),
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "DEFAULT_MODEL": "attrition-logreg",
        "FALLBACK_MODEL": "attrition-gbm",
    }
    with live_api(workdir, env) as server:
        yield server


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
def test_every_page_says_when_the_api_is_down(
    page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("API_URL", down)

    app = open_page(page)

    if page == "views/predictions.py":  # nothing to ask the API before the login
        log_in(app, *ADMIN)
    assert "The API is down or unreachable" in texts(app.error)
    assert down in texts(app.error)
    assert f"API unreachable at {down}" in texts(app.sidebar.error)


# --- fresh service: no predictions yet ---------------------------------------------------


def test_overview_with_no_traffic_yet(api_url: str) -> None:
    app = open_page("views/overview.py")

    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Status"] == "ready"
    assert metrics["Prediction requests"] == "0"
    assert metrics["Latency p50 / p95"] == "no data"
    assert "No prediction requests since the API started" in texts(app.info)
    assert "default model:** `attrition-logreg`" in texts(app.markdown).lower()
    assert f"API up at {api_url}" in texts(app.sidebar.success)


def test_predictions_page_asks_for_a_login(api_url: str) -> None:
    app = open_page("views/predictions.py")

    assert "log in" in texts(app.info)
    assert [field.label for field in app.text_input] == ["Username", "Password"]
    assert plotly_charts(app) == 0


def test_a_wrong_password_is_refused(api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), ADMIN[0], "not-the-password")

    assert "Wrong username or password" in texts(app.error)
    assert "api_token" not in app.session_state


def test_no_predictions_yet_after_login(api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), *ADMIN)

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


# --- making predictions, then reading them back ------------------------------------------


def test_try_a_model_with_the_generated_form(api_url: str) -> None:
    app = open_page("views/try_model.py")
    assert app.selectbox(key="try_model").value == "attrition-logreg"
    assert len(app.number_input) + len(app.selectbox) > 30  # one widget per feature

    app.button[0].click().run()

    assert not app.exception
    assert "from `attrition-logreg@1`" in texts(app.success)
    assert plotly_charts(app) == 1


def test_the_form_keeps_to_the_schemas_ranges(api_url: str) -> None:
    app = open_page("views/try_model.py")

    age = next(widget for widget in app.number_input if widget.label == "Age")
    assert (age.min, age.max, age.value) == (18, 100, 24)


def test_history_with_traffic(api_url: str) -> None:
    example = httpx.get(f"{api_url}/models/attrition-logreg").json()["manifest"]["input"][
        "example"]
    for model in ATTRITION:
        assert httpx.post(f"{api_url}/predict/{model}", json={"features": example}).is_success
    httpx.post(f"{api_url}/predict", json={"features": {"Age": "old"}})  # traced as invalid

    app = log_in(open_page("views/predictions.py"), *ADMIN)

    metrics = {metric.label: metric.value for metric in app.metric}
    assert int(metrics["Matching requests"]) >= 3
    assert int(metrics["Failed (shown)"]) >= 1
    assert plotly_charts(app) == 4
    recent = app.dataframe[0].value
    assert {"attrition-gbm@1", "attrition-logreg@1"} <= set(recent["model"])


def test_history_filters_by_outcome(api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), *ADMIN)

    app.sidebar.selectbox(key="history_outcome").select("invalid_input").run()

    assert not app.exception
    assert set(app.dataframe[0].value["outcome"]) == {"invalid_input"}


def test_logging_out_shows_the_login_again(api_url: str) -> None:
    app = log_in(open_page("views/predictions.py"), *ADMIN)

    app.sidebar.button[0].click().run()

    assert "api_token" not in app.session_state
    assert [field.label for field in app.text_input] == ["Username", "Password"]


def test_overview_with_traffic_draws_rates_after_two_readings(api_url: str) -> None:
    app = open_page("views/overview.py")
    app.button[0].click().run()  # Refresh: a second reading of /metrics

    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert int(metrics["Prediction requests"]) >= 3
    assert metrics["Latency p50 / p95"] != "no data"
    # Rates, latency over time, and requests by outcome.
    assert plotly_charts(app) == 3
