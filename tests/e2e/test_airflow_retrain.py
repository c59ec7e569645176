"""The retraining DAG under ``airflow dags test`` against a live API, both ways.

Airflow runs from its own virtualenv (``make airflow-install``); the DAG's steps run the app's
commands with this interpreter. The margin makes the outcome deterministic: a huge one fails
the gate (nothing packaged, champion kept), a negative one passes it (version 2 packaged and
made champion through the admin API).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ADMIN, MODELS_DIR, copy_model
from tests.live_server import ROOT, LiveServer, live_api, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
DAG_ID = "retrain_attrition"
MODEL = "attrition-logreg"
RUN_TIMEOUT_SECONDS = 300


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    """The real runtimes over the bundled attrition models and their held-out set; the data
    sets in the API's database (SQLite, and the PostgreSQL of TEST_DATABASE_URL)."""
    if not AIRFLOW.exists():
        pytest.skip(f"{AIRFLOW} missing: `make airflow-install` makes Airflow's virtualenv")
    store = tmp_path / "models"
    copy_model(store, MODEL)
    copy_model(store, "attrition-gbm")
    shutil.copytree(
        MODELS_DIR / "_evaluation" / "employee-attrition",
        store / "_evaluation" / "employee-attrition",
    )
    with live_api(tmp_path, server_env(store, tmp_path, DATABASE_URL=database_url)) as live:
        yield live


def airflow_env(tmp_path: Path, server: LiveServer, margin: str) -> dict[str, str]:
    home = tmp_path / "airflow"
    variables = {
        "MLDEPLOY_API_URL": server.url,
        "MLDEPLOY_ADMIN_USERNAME": ADMIN["username"],
        "MLDEPLOY_ADMIN_PASSWORD": ADMIN["password"],
        "MLDEPLOY_MODELS_DIR": server.env["MODELS_DIR"],
        "MLDEPLOY_DATABASE_URL": server.env["DATABASE_URL"],
        "MLDEPLOY_APP_DIR": str(ROOT),
        "MLDEPLOY_APP_PYTHON": sys.executable,
        "MLDEPLOY_PROMOTION_MARGIN": margin,
        "MLDEPLOY_WORK_DIR": str(tmp_path / "work"),
    }
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "deploy" / "airflow" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **{f"AIRFLOW_VAR_{name}": value for name, value in variables.items()},
    }


def dags_test(
    env: dict[str, str], log_path: Path, *, succeeds: bool = True
) -> subprocess.CompletedProcess[str]:
    """One run of the DAG; its output also kept in ``log_path``, the task logs included."""
    done = subprocess.run(
        [str(AIRFLOW), "dags", "test", DAG_ID],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    log_path.write_text(done.stdout + done.stderr)
    assert (done.returncode == 0) is succeeds, done.stdout[-6000:] + done.stderr[-6000:]
    return done


def model(server: LiveServer) -> dict[str, object]:
    answer = httpx.get(f"{server.url}/models/{MODEL}", timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_the_gate_keeps_the_champion_then_promotes_a_better_candidate(
    tmp_path: Path, server: LiveServer
) -> None:
    store = Path(server.env["MODELS_DIR"])
    subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env=airflow_env(tmp_path, server, "0"),
        capture_output=True,
        check=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )

    kept = dags_test(airflow_env(tmp_path, server, "1.0"), tmp_path / "kept.log")
    log = kept.stdout + kept.stderr
    assert "Candidate and champion scored on the same held-out rows" in log, log[-6000:]
    assert "Gate failed: champion kept" in log, log[-6000:]
    assert not (store / MODEL / "2").exists()
    assert model(server)["serving_version"] == "1"

    promoted = dags_test(airflow_env(tmp_path, server, "-1.0"), tmp_path / "promoted.log")
    log = promoted.stdout + promoted.stderr
    assert "Gate passed: promoting" in log, log[-6000:]
    assert f"Packaged {MODEL}@2" in log, log[-6000:]
    assert (store / MODEL / "2" / "manifest.json").exists()
    after = model(server)
    assert after["serving_version"] == "2"
    assert after["aliases"] == {"champion": "2"}


def test_a_candidate_measured_on_other_rows_than_the_champion_is_never_promoted(
    tmp_path: Path, server: LiveServer
) -> None:
    store = Path(server.env["MODELS_DIR"])
    served_rows = store / "_evaluation" / "employee-attrition" / "heldout.csv"
    lines = served_rows.read_text().splitlines(keepends=True)
    served_rows.write_text("".join(lines[:-1]))  # the API now scores one row fewer
    subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env=airflow_env(tmp_path, server, "0"),
        capture_output=True,
        check=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    # Even a gate that anything would pass (a negative margin) is not reached.
    failed = dags_test(
        airflow_env(tmp_path, server, "-1.0"), tmp_path / "other-rows.log", succeeds=False
    )
    log = failed.stdout + failed.stderr
    assert "different held-out rows, so their scores cannot be compared" in log, log[-6000:]
    assert "Packaged" not in log, log[-6000:]
    assert not (store / MODEL / "2").exists()
    assert model(server)["serving_version"] == "1"
