"""Instrument training with ``MLFLOW_TRACKING_URI``: a real ``mlflow server`` receives the run.

A small real training (``python -m ml.training.instruments`` on a subset): two instruments and
the ``unknown`` class rendered from FluidR3 and this project's synthesis (two families, so two
leave-one-source-out folds), one epoch of a narrow CNN, exported to ONNX; the run must hold its
parameters, its metrics (the folds' as ``cv_*``, the held-out ones), the dataset reference and
the model's folder, registered as ``instrument-cnn``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ml.training import instruments
from ml.training.render_data import render_all
from ml.training.render_instruments import INSTRUMENTS, SOUNDFONTS
from tests.mlflow_server import running_mlflow_server

FLUIDR3 = SOUNDFONTS["fluidr3"]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("fluidsynth") is None or not FLUIDR3.path.exists(),
        reason="needs FluidSynth and fluid-soundfont-gm",
    ),
    # MLflow's schema inference (log_input) calls a pandas method positionally.
    pytest.mark.filterwarnings("ignore:Starting with pandas version 4.0:DeprecationWarning"),
]


def test_an_instrument_training_is_logged_and_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    wanted = [i for i in INSTRUMENTS if i.label in ("piano", "flute")]
    render_all(data, [FLUIDR3], wanted, velocities=(80,), note_step=4, drums=True, others=["synth"])
    models = tmp_path / "models"
    with running_mlflow_server(tmp_path / "mlflow") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a failure fails at once
        instruments.main(
            [
                "--data", str(data),
                "--models-dir", str(models),
                "--epochs", "1",
                "--loso-epochs", "1",
                "--epoch-size", "64",
                "--channels", "8,8,16,16",
                "--max-clips", "300",
                "--version", "7",
                "--write-eval-set",
            ]
        )  # fmt: skip
        client = MlflowClient(tracking_uri=url)
        (version,) = client.search_model_versions("name = 'instrument-cnn'")
        run = client.get_run(version.run_id)
        experiment = client.get_experiment(run.info.experiment_id)
        listed = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "model")}

    manifest = json.loads((models / "instrument-cnn" / "7" / "manifest.json").read_text())
    assert manifest["framework"] == "onnx-audio"
    assert manifest["output"]["labels"] == ["piano", "flute", "unknown"]
    assert (version.version, run.info.run_name) == ("1", "instrument-cnn@7")
    assert experiment.name == "instrument-recognition"
    params = run.data.params
    assert (params["epochs"], params["epoch_size"], params["max_clips"]) == ("1", "64", "300")
    assert params["architecture_kwargs.channels"] == "[8, 8, 16, 16]"
    assert float(params["architecture_kwargs.temperature"]) == pytest.approx(
        manifest["metrics"]["temperature"]
    )
    assert json.loads(params["families"]) == ["fluidr3", "synth"]
    metrics = run.data.metrics
    # Held-out figures: the families left out one at a time (the headline, pooled, and each
    # fold's as cv_*), and the pitches never trained on.
    for name in ("accuracy", "loso_min_accuracy", "loso_pooled_ece", "temperature"):
        assert metrics[name] == pytest.approx(manifest["metrics"][name])
    evaluations = {e["dataset"]: e["metrics"] for e in manifest["evaluations"]}
    pitches = evaluations["../data/instruments (held-out pitches)"]
    assert metrics["heldout_pitches_accuracy"] == pytest.approx(pitches["accuracy"])
    assert metrics["heldout_pitches_ece"] == pytest.approx(pitches["ece"])
    for family in ("fluidr3", "synth"):
        fold = evaluations[f"loso/{family}"]
        assert metrics[f"cv_loso_{family}_accuracy"] == pytest.approx(fold["accuracy"])
        assert metrics[f"cv_loso_{family}_ece"] == pytest.approx(fold["ece"])
    # The dataset reference: what was trained on, by hash, and the clips themselves as rows.
    tags = run.data.tags
    data_ref = manifest["training"]["data"]
    assert tags["data.sha256"] == data_ref["sha256"]
    assert tags["data.rows"] == str(data_ref["rows"])
    assert "fluidr3" in tags["data.source"] and "synth" in tags["data.source"]
    inputs = {item.dataset.name for item in run.inputs.dataset_inputs}
    assert inputs == {"instrument-recognition/training"}
    # The registered model is the folder the model store serves.
    assert listed >= {"model.onnx", "model.pt", "mel_filterbank.npy", "manifest.json"}
    assert version.run_id == run.info.run_id
