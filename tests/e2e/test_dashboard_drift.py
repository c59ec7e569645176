"""The Drift page under Streamlit's AppTest, against a real API that served shifted inputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_dashboard_pages import ATTRITION, log_in, open_page, texts
from tests.helpers import ADMIN, copy_model, heldout_rows
from tests.live_server import LiveServer, live_api, server_env

pytestmark = pytest.mark.e2e
PAGE = "views/drift.py"


@pytest.fixture(scope="module")
def drifted_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The attrition models; each has answered 200 held-out rows made 20 years older."""
    workdir = tmp_path_factory.mktemp("dashboard-drift")
    store = workdir / "models"
    for name in ATTRITION:
        copy_model(store, name)
    env = server_env(store, workdir, ENV="test", DRIFT_MIN_ROWS="50")
    with live_api(workdir, env) as server:
        older = [{**row, "Age": min(row["Age"] + 20, 100)} for row in heldout_rows()[:200]]
        for name in ATTRITION:
            answer = httpx.post(f"{server.url}/predict/{name}", json={"instances": older})
            assert answer.status_code == 200, answer.text
        yield server


def test_the_drift_page_names_the_drifted_feature(
    drifted_api: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_URL", drifted_api.url)
    app = open_page(PAGE)
    assert "log in" in texts(app.info).lower()
    app = log_in(app, ADMIN["username"], ADMIN["password"])

    assert "Drifted (PSI above 0.25): Age" in texts(app.error)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Rows in the window"] == "200 of 1,000"
    assert len(app.get("plotly_chart")) == 1


def test_a_version_without_a_profile_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "models"
    copy_model(store, "instrument-mfcc")
    old = copy_model(store, "attrition-logreg")
    (old / "reference_profile.json").unlink()  # as if its profile had been lost
    with live_api(tmp_path, server_env(store, tmp_path, ENV="test")) as server:
        monkeypatch.setenv("API_URL", server.url)
        app = log_in(open_page(PAGE), ADMIN["username"], ADMIN["password"])
    assert "reference profile cannot be read" in texts(app.info)
