"""The whole audio pipeline on a few notes: render, train, write, load and serve.

Renders three instruments (every 6th semitone, one velocity) from two soundfonts with
FluidSynth, evaluates leave-one-source-out (one fold per soundfont family), trains a narrow CNN
for one epoch and the MFCC classifier, then loads both through the runtime registry map
exactly as the server does and predicts uploaded bytes.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ml.audio import decode_audio
from ml.manifest import read_manifest
from ml.runtime import runtime_class
from ml.training.config import TrainConfig
from ml.training.instruments import run
from ml.training.render_data import render_all
from ml.training.render_instruments import (
    INSTRUMENTS,
    SAMPLE_RATE,
    SOUNDFONTS,
    read_index,
)

USED = [SOUNDFONTS["fluidr3"], SOUNDFONTS["musescore"]]
pytestmark = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not all(sf.path.exists() for sf in USED),
    reason="needs FluidSynth and two soundfonts (apt-get install fluidsynth "
    "fluid-soundfont-gm musescore-general-soundfont-small)",
)

LABELS = ("piano", "violin", "flute")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("instruments")
    instruments = [i for i in INSTRUMENTS if i.label in LABELS]
    render_all(out, USED, instruments=instruments, velocities=(80,), note_step=6)
    return out


def test_rendering_writes_mono_two_second_clips(rendered: Path) -> None:
    records = read_index(rendered)

    assert {r.label for r in records} == set(LABELS)
    assert {r.soundfont for r in records} == {sf.key for sf in USED}
    assert {r.source_family for r in records} == {"fluidr3", "musescore"}
    samples, rate = soundfile.read(str(rendered / records[0].file), always_2d=True)
    assert rate == SAMPLE_RATE
    assert samples.shape == (2 * SAMPLE_RATE, 1)
    assert np.abs(samples).max() > 0.001


def test_train_write_load_and_predict(rendered: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        epochs=1,
        epoch_size=0,
        loso_epochs=1,
        batch_size=16,
        channels=(8, 16, 16, 32),
        mfcc_copies=1,
        heldout_every=4,
        version="test",
    )

    manifests = run(rendered, tmp_path, config)
    # The CNN is exported at training to its served form; model.pt stays as the source.
    assert manifests[config.cnn_name].framework == "onnx-audio"

    eval_dir = tmp_path / "_evaluation" / "instrument-recognition"
    assert (eval_dir / "labels.csv").exists()
    upload = _as_ogg(next(eval_dir.glob("*.flac")))
    for name, manifest in manifests.items():
        model_dir = tmp_path / name / "test"
        stored = read_manifest(model_dir / "manifest.json")
        assert stored.model_dump(mode="json") == manifest.model_dump(mode="json")
        assert manifest.output.labels == list(LABELS)
        artifact = (model_dir / manifest.artifact).read_bytes()
        assert hashlib.sha256(artifact).hexdigest() == manifest.sha256
        assert {e.dataset for e in manifest.evaluations} >= {"_evaluation/instrument-recognition"}
        if name == config.cnn_name:
            # One fold per family, trained without it: its figures are in the manifest.
            folds = {e.dataset: e.metrics for e in manifest.evaluations if "loso/" in e.dataset}
            assert set(folds) == {"loso/fluidr3", "loso/musescore"}
            assert all({"accuracy", "ece", "temperature"} <= set(m) for m in folds.values())
            assert manifest.metrics["loso_min_accuracy"] == min(
                m["accuracy"] for m in folds.values()
            )
            kwargs = manifest.training.parameters["architecture_kwargs"]
            assert kwargs["temperature"] == pytest.approx(manifest.metrics["temperature"])
        for evaluation in manifest.evaluations:
            assert len(evaluation.confusion_matrix) == len(LABELS)
            assert set(evaluation.per_class) == set(LABELS)

        runtime = runtime_class(manifest.framework)(manifest, model_dir, "auto")
        runtime.load()
        runtime.warm_up()
        [prediction] = runtime.predict([decode_audio(upload, max_seconds=30)])
        runtime.unload()

        assert prediction.label in LABELS
        assert set(prediction.probabilities) == set(LABELS)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def _as_ogg(path: Path) -> bytes:
    samples, rate = soundfile.read(str(path))
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="OGG", subtype="VORBIS")
    return buffer.getvalue()
