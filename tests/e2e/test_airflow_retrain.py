"""The retraining DAG under ``airflow dags test`` against a live API, both ways.

Airflow runs from its own virtualenv (``make airflow-install``); the DAG's steps run the app's
commands with this interpreter. The margin makes the outcome deterministic: a huge one fails
the gate (nothing packaged, champion kept), a negative one passes it (version 2 packaged and
made champion through the admin API). A third run, after that promotion, shows the champion
scored on the candidate's recorded held-out rows (not on its own packaged sample) and kept.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ml.manifest import read_manifest
from tests.helpers import ADMIN, MODELS_DIR, copy_model
from tests.live_server import ROOT, LiveServer, live_api, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
DAG_ID = "retrain_attrition"
MODEL = "attrition-logreg"
RUN_TIMEOUT_SECONDS = 300
HELDOUT = Path("_evaluation") / "employee-attrition" / "heldout.csv"


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


def evaluated_on(log: str) -> tuple[str, Path]:
    """The champion the run scored with ``registry evaluate``, and the file it scored it on."""
    found = re.findall(rf"-m registry evaluate ({MODEL}@\S+) --sample (\S+) --target", log)
    assert len(found) == 1, log[-6000:]
    return found[0][0], Path(found[0][1])


def trained_into(log: str) -> Path:
    """The work folder the run trained its candidate into."""
    found = re.findall(r"-m ml\.training\.attrition --models-dir (\S+) --dataset", log)
    assert len(found) == 1, log[-6000:]
    return Path(found[0])


def test_the_gate_keeps_the_champion_promotes_a_better_one_and_scores_it_on_new_rows(
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
    champion, rows = evaluated_on(log)
    assert champion == f"{MODEL}@1"
    assert rows == trained_into(log) / HELDOUT
    assert f"roc_auc on the 294 held-out rows of {rows}" in log, log[-6000:]
    assert "Gate failed: champion kept" in log, log[-6000:]
    assert not (store / MODEL / "2").exists()
    assert model(server)["serving_version"] == "1"

    promoted = dags_test(airflow_env(tmp_path, server, "-1.0"), tmp_path / "promoted.log")
    log = promoted.stdout + promoted.stderr
    assert "Gate passed: promoting" in log, log[-6000:]
    assert f"Packaged {MODEL}@2" in log, log[-6000:]
    # Version 2 is the candidate as evaluated: its tuned threshold, so its labels and f1.
    candidate = read_manifest(trained_into(log) / MODEL / "1" / "manifest.json")
    packaged = read_manifest(store / MODEL / "2" / "manifest.json")
    assert candidate.output.decision_threshold is not None
    assert packaged.output.decision_threshold == candidate.output.decision_threshold
    assert packaged.evaluations[0].confusion_matrix == candidate.evaluations[0].confusion_matrix
    assert packaged.metrics["f1"] == pytest.approx(candidate.metrics["f1"], rel=1e-12)
    after = model(server)
    assert after["serving_version"] == "2"
    assert after["aliases"] == {"champion": "2"}

    # The champion is now version 2, whose own evaluation set is its packaged sample
    # (``_evaluation/employee-attrition/attrition-logreg-2.csv``): the gate still scores it on
    # the held-out rows recorded for the candidate's data set version, in this run's folder.
    again = dags_test(airflow_env(tmp_path, server, "1.0"), tmp_path / "again.log")
    log = again.stdout + again.stderr
    champion, rows = evaluated_on(log)
    assert champion == f"{MODEL}@2"
    assert rows == trained_into(log) / HELDOUT
    assert rows.is_relative_to(tmp_path / "work")
    assert f"champion {MODEL}@2" in log, log[-6000:]
    assert f"roc_auc on the 294 held-out rows of {rows}" in log, log[-6000:]
    assert "Gate failed: champion kept" in log, log[-6000:]
    assert not (store / MODEL / "3").exists()
    assert model(server)["serving_version"] == "2"
    assert model(server)["aliases"] == {"champion": "2"}
