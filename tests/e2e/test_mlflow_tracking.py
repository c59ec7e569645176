"""Training with ``MLFLOW_TRACKING_URI``: a real ``mlflow server`` receives the run.

One candidate with one hyper-parameter set (seconds, not the full grid), trained on the data
set stored in a SQLite database of the test's own, as ``python -m ml.training.attrition`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import joblib
import mlflow.models
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml.manifest import read_manifest
from ml.training import attrition
from ml.training.tracking import model_files, track_training
from tests.live_server import ROOT
from tests.mlflow_server import running_mlflow_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    # Importing mlflow.pyfunc (log_model does) warns about MLflow's own type hints, once.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
    # MLflow's schema inference (log_input) calls a pandas method positionally.
    pytest.mark.filterwarnings("ignore:Starting with pandas version 4.0:DeprecationWarning"),
    # MLflow's hint that integer columns cannot hold missing values (these have none).
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

# The default candidate with its first grid entry only: what is tracked does not depend on it.
QUICK = [replace(attrition.CANDIDATES[0], grid=attrition.CANDIDATES[0].grid[:1])]


def train(tmp_path: Path) -> Path:
    with attrition.dataset_session(f"sqlite:///{tmp_path / 'data.db'}") as session:
        (model_dir,) = attrition.train_all(tmp_path / "models", session, "attrition", QUICK)
    return model_dir


def test_a_training_run_is_logged_and_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_mlflow_server(tmp_path / "mlflow") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a failure fails at once
        model_dir = train(tmp_path)
        client = MlflowClient(tracking_uri=url)

        (version,) = client.search_model_versions("name = 'attrition-logreg'")
        run = client.get_run(version.run_id)
        experiment = client.get_experiment(run.info.experiment_id)
        loaded = mlflow.sklearn.load_model("models:/attrition-logreg/1")
        signature = mlflow.models.get_model_info("models:/attrition-logreg/1").signature
        # The audio models' way: the model's folder, registered as it is (here version 2).
        manifest_read = read_manifest(model_dir / "manifest.json")
        as_files = track_training(manifest_read, model_dir, model_files(model_dir))
        files_version = client.get_model_version("attrition-logreg", as_files.registered_version)
        listed = client.list_artifacts(as_files.run_id, "model")

    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert version.version == "1"
    assert run.info.run_name == "attrition-logreg@1"
    assert experiment.name == "employee-attrition"
    params = run.data.params
    assert params["selected.C"] == "0.03" and params["seed"] == "42"
    assert params["split.heldout_rows"] == "294"
    metrics = run.data.metrics
    assert metrics["roc_auc"] == pytest.approx(manifest["metrics"]["roc_auc"])
    assert metrics["cv_roc_auc_mean"] == pytest.approx(manifest["metrics"]["cv_roc_auc_mean"])
    assert "cv_fold_5_roc_auc" in metrics
    reference = manifest["training"]["data"]["dataset"]
    assert reference == {
        "name": "attrition",
        "version": 1,
        "sha256": manifest["training"]["data"]["sha256"],
        "split": "heldout",
    }
    tags = run.data.tags
    assert (tags["dataset.name"], tags["dataset.version"]) == ("attrition", "1")
    assert tags["dataset.sha256"] == reference["sha256"]
    inputs = {item.dataset.name: item.tags for item in run.inputs.dataset_inputs}
    assert set(inputs) == {"attrition@1/training", "attrition@1/evaluation"}
    assert signature.inputs.input_names() == attrition.FEATURES
    assert (as_files.registered_version, files_version.run_id) == ("2", as_files.run_id)
    assert {Path(item.path).name for item in listed} >= {"model.joblib", "manifest.json"}
    # The registered model is the pipeline the model store holds.
    heldout = pd.read_csv(model_dir.parents[1] / attrition.EVALUATION_DATASET)[attrition.FEATURES]
    pipeline = joblib.load(model_dir / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(heldout), pipeline.predict_proba(heldout))


def test_without_a_tracking_uri_mlflow_is_not_imported(tmp_path: Path) -> None:
    # A process of its own: this one has imported mlflow already.
    script = f"""
import sys
from dataclasses import replace
from pathlib import Path
from ml.training import attrition

quick = [replace(attrition.CANDIDATES[0], grid=attrition.CANDIDATES[0].grid[:1])]
with attrition.dataset_session("sqlite:///{tmp_path / "data.db"}") as session:
    attrition.train_all(Path("{tmp_path / "models"}"), session, "attrition", quick)
assert "mlflow" not in sys.modules, "mlflow was imported"
"""
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "models" / "attrition-logreg" / "1" / "manifest.json").is_file()
