"""The MFCC trainer writes, beside its pipeline, the compiled form that serving reads."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np

from ml.features import mfcc_statistics_from_power
from ml.linear_softmax import LinearPipeline
from ml.training.config import TrainConfig
from ml.training.instruments import build_manifest, train_mfcc_model
from ml.training.instruments_data import ClipSet, Split
from registry.hashing import verify_artifact_files


def test_the_mfcc_trainer_writes_a_compiled_form_that_answers_as_its_pipeline(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    labels = ["piano", "violin", "flute"]
    config = TrainConfig(mfcc_copies=1)
    targets = np.arange(36) % len(labels)
    # Mel power with a spectral tilt per class, so that the classes can be told apart.
    tilt = np.linspace(0.0, 1.0, config.features.n_mels)[None, :, None]
    power = rng.random((36, config.features.n_mels, 87)) * (0.1 + tilt) ** targets[:, None, None]
    clips = ClipSet(tmp_path, [], power[:30].astype(np.float32), targets[:30])
    heldout = ClipSet(tmp_path, [], power[30:].astype(np.float32), targets[30:])
    split = Split(labels, 5, clips, heldout)

    trained, evaluations = train_mfcc_model(split, config, tmp_path / "model", labels, None)
    manifest = build_manifest(trained, tmp_path / "model", config, split, evaluations, labels)

    assert manifest.compiled is not None and manifest.compiled.kind == "linear-softmax"
    verify_artifact_files(manifest, tmp_path / "model")  # the pickle and the form, as loading
    path = tmp_path / "model" / manifest.compiled.artifact
    form = LinearPipeline.from_dict(json.loads(path.read_text()))
    pipeline = joblib.load(tmp_path / "model" / trained.artifact)
    rows = mfcc_statistics_from_power(heldout.power, config.features)  # those of the proof
    np.testing.assert_array_equal(form.predict_proba(rows), pipeline.predict_proba(rows))
