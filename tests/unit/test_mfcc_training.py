"""The MFCC trainer writes, beside its pipeline, the compiled form that serving reads."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np

from ml.features import mfcc_statistics_from_power
from ml.linear_softmax import LinearPipeline
from ml.manifest import sha256_file
from ml.training.config import TrainConfig
from ml.training.instruments import train_mfcc_model
from ml.training.instruments_data import ClipSet, Split


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
    clips = ClipSet(tmp_path, [], power.astype(np.float32), targets)
    split = Split(labels, 5, clips, ClipSet(tmp_path, []))

    trained, _ = train_mfcc_model(split, config, tmp_path / "model", labels, None)

    assert trained.compiled is not None and trained.compiled.kind == "linear-softmax"
    path = tmp_path / "model" / trained.compiled.artifact
    assert trained.compiled.sha256 == sha256_file(path)
    form = LinearPipeline.from_dict(json.loads(path.read_text()))
    pipeline = joblib.load(tmp_path / "model" / trained.artifact)
    rows = mfcc_statistics_from_power(clips.power, config.features)
    np.testing.assert_array_equal(form.predict_proba(rows), pipeline.predict_proba(rows))
