"""Retrain the attrition model, gate it against the champion, promote it only when better.

load_dataset -> train_candidate -> evaluate -> gate -> package -> promote. The project's own
commands do the work, run as subprocesses with the app's Python (``mldeploy_app_python``), so
Airflow's virtualenv needs none of the app's dependencies. The candidate is trained on the
latest stored version of the data set and measured on the held-out rows that training recorded
for that version (its manifest's metrics; the rows in the work folder's
``_evaluation/employee-attrition/heldout.csv``). The champion, the version the API serves
(``GET /models/{name}``: ``serving_version``), is scored on that same file by
``registry evaluate`` from the API's store, with the metric definitions of the manifests: both
scores are on the same rows by construction, on new data as on old. Only when the candidate
beats it by more than ``mldeploy_promotion_margin`` is it packaged into the API's model store
(``registry add``, with the decision threshold its training tuned, so that the version
promoted labels rows as the candidate measured did) and made ``champion`` through the admin
API; otherwise ``package`` and ``promote`` are skipped and the champion stays as it was.

Settings are Airflow Variables, which ``AIRFLOW_VAR_<NAME>`` environment variables also set:
mldeploy_api_url, mldeploy_admin_username and mldeploy_admin_password (or mldeploy_admin_token),
mldeploy_models_dir (the API's store), mldeploy_database_url (where the data sets are),
mldeploy_app_dir and mldeploy_app_python (the project and its venv's python), mldeploy_model,
mldeploy_metric, mldeploy_promotion_margin, mldeploy_work_dir.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
from airflow.sdk import Variable, dag, task

logger = logging.getLogger(__name__)

DEFAULTS = {
    "mldeploy_api_url": "http://localhost:8000",
    "mldeploy_admin_username": "",
    "mldeploy_admin_password": "",
    "mldeploy_admin_token": "",
    "mldeploy_models_dir": "models",
    "mldeploy_database_url": "sqlite:///data/traces.db",
    "mldeploy_app_dir": ".",
    "mldeploy_app_python": ".venv/bin/python",
    "mldeploy_model": "attrition-logreg",
    "mldeploy_metric": "roc_auc",
    # ROC AUC points the candidate must gain over the champion to replace it.
    "mldeploy_promotion_margin": "0.005",
    "mldeploy_work_dir": tempfile.gettempdir(),
}
DATASET = "attrition"
TARGET = "Attrition"
HELDOUT = "_evaluation/employee-attrition/heldout.csv"
TIMEOUT = httpx.Timeout(30.0)


def setting(name: str) -> str:
    return str(Variable.get(name, default=DEFAULTS[name]))


def run_app(*args: str) -> str:
    """Run ``python ARGS`` in the project with its venv; its output logged, stdout returned."""
    app_dir = Path(setting("mldeploy_app_dir")).resolve()
    # Not resolved: a venv's python is a symlink, and its target is outside the venv.
    python = os.path.abspath(app_dir / setting("mldeploy_app_python"))
    env = {**os.environ, "DATABASE_URL": setting("mldeploy_database_url"), "PYTHONPATH": ""}
    logger.info("Running %s %s", python, " ".join(args))
    done = subprocess.run(
        [python, *args], cwd=app_dir, env=env, capture_output=True, text=True, check=False
    )
    for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        if text.strip():
            logger.info("%s:\n%s", stream, text.rstrip())
    if done.returncode != 0:
        raise RuntimeError(f"{args[1]} exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def admin_headers(client: httpx.Client) -> dict[str, str]:
    token = setting("mldeploy_admin_token")
    if not token:
        answer = client.post(
            "/auth/token",
            data={
                "username": setting("mldeploy_admin_username"),
                "password": setting("mldeploy_admin_password"),
            },
        )
        answer.raise_for_status()
        token = answer.json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def api_client() -> httpx.Client:
    return httpx.Client(base_url=setting("mldeploy_api_url"), timeout=TIMEOUT)


@dag(schedule=None, catchup=False, tags=["mldeploy"], doc_md=__doc__)
def retrain_attrition() -> None:
    @task
    def load_dataset() -> str:
        """Store the source's current content: a new version only when it changed."""
        line = run_app("-m", "api.manage", "load-dataset", DATASET).strip()
        logger.info("Data set: %s", line)
        return line

    @task
    def train_candidate(dataset: str, run_id: str | None = None) -> dict[str, Any]:
        """Train on the latest stored version into a work folder of this run."""
        work = Path(setting("mldeploy_work_dir")) / f"retrain-{run_id}".replace(":", "_")
        run_app("-m", "ml.training.attrition", "--models-dir", str(work), "--dataset", DATASET)
        model_dir = work / setting("mldeploy_model") / "1"
        manifest = json.loads((model_dir / "manifest.json").read_text())
        metric = setting("mldeploy_metric")
        candidate = {
            "artifact": str(model_dir / manifest["artifact"]),
            "heldout": str(work / HELDOUT),
            "dataset": manifest["training"]["data"].get("dataset"),
            "score": manifest["metrics"][metric],
            "samples": manifest["evaluations"][0]["samples"],
            # Tuned by the training on its own rows: the labels (f1, recall) depend on it.
            "decision_threshold": manifest["output"].get("decision_threshold"),
        }
        logger.info(
            "Candidate (trained on %s): %s %.4f on %d held-out rows",
            dataset,
            metric,
            candidate["score"],
            candidate["samples"],
        )
        return candidate

    @task
    def evaluate(candidate: dict[str, Any]) -> dict[str, Any]:
        """The champion scored on the candidate's held-out rows beside it; the gate's decision."""
        name, metric = setting("mldeploy_model"), setting("mldeploy_metric")
        margin = float(setting("mldeploy_promotion_margin"))
        with api_client() as client:
            answer = client.get(f"/models/{name}")
        answer.raise_for_status()
        served = answer.json()
        version = served["serving_version"]
        logger.info("Champion: %s@%s (aliases %s)", name, version, served.get("aliases"))
        output = run_app(
            "-m",
            "registry",
            "evaluate",
            f"{name}@{version}",
            "--sample",
            candidate["heldout"],
            "--target",
            TARGET,
            "--models-dir",
            str(Path(setting("mldeploy_models_dir")).resolve()),
        )
        champion = json.loads(output.strip().splitlines()[-1])
        if champion["samples"] != candidate["samples"]:
            raise ValueError(
                f"{candidate['heldout']} gave the champion {champion['samples']} rows and the "
                f"candidate {candidate['samples']}: not the rows the candidate was measured on"
            )
        gain = candidate["score"] - champion["metrics"][metric]
        decision = {
            "champion_version": version,
            "champion_score": champion["metrics"][metric],
            "candidate_score": candidate["score"],
            "samples": champion["samples"],
            "heldout": candidate["heldout"],
            "gain": gain,
            "margin": margin,
            "promote": gain > margin,
        }
        logger.info(
            "%s on the %d held-out rows of %s: candidate %.4f, champion %s@%s %.4f: "
            "gain %+.4f %s margin %.4f",
            metric,
            champion["samples"],
            candidate["heldout"],
            candidate["score"],
            name,
            version,
            champion["metrics"][metric],
            gain,
            ">" if decision["promote"] else "<=",
            margin,
        )
        return decision

    @task.short_circuit
    def gate(decision: dict[str, Any]) -> bool:
        """False skips package and promote: the champion is left alone."""
        verdict = "passed: promoting" if decision["promote"] else "failed: champion kept"
        logger.info(
            "Gate %s (gain %+.4f, margin %.4f)", verdict, decision["gain"], decision["margin"]
        )
        return bool(decision["promote"])

    @task
    def package(candidate: dict[str, Any]) -> str:
        """``registry add`` into the API's store; measured on the same held-out rows."""
        name = setting("mldeploy_model")
        threshold = candidate.get("decision_threshold")
        # repr: the shortest text that reads back as the same float, as the manifest has it.
        tuned = [] if threshold is None else ["--decision-threshold", repr(float(threshold))]
        output = run_app(
            "-m",
            "registry",
            "add",
            name,
            "--artifact",
            candidate["artifact"],
            "--sample",
            candidate["heldout"],
            "--target",
            TARGET,
            "--description",
            f"retrained by Airflow on {candidate['dataset']}",
            *tuned,
            "--models-dir",
            str(Path(setting("mldeploy_models_dir")).resolve()),
        )
        ref = output.strip().splitlines()[-1]
        logger.info("Packaged %s", ref)
        return ref

    @task
    def promote(ref: str) -> str:
        """Reload the store (the new version), then point ``champion`` at it."""
        name, version = ref.split("@")
        with api_client() as client:
            headers = admin_headers(client)
            client.post("/models/reload", headers=headers).raise_for_status()
            answer = client.put(
                f"/models/{name}/aliases/champion", json={"version": version}, headers=headers
            )
            answer.raise_for_status()
        logger.info("Champion of %s is now version %s: %s", name, version, answer.json())
        return ref

    candidate = train_candidate(load_dataset())
    decision = evaluate(candidate)
    ref = package(candidate)
    gate(decision) >> ref
    promote(ref)


retrain_attrition()
