"""The committed instrument models, loaded by their runtimes, on the committed sample clips."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ml.audio import AudioClip, decode_audio
from ml.errors import InvalidInputError, ModelRuntimeError
from ml.manifest import AudioInput, read_manifest
from ml.runtime import ModelRuntime, runtime_class

MODELS = Path(__file__).resolve().parents[2] / "models"
SAMPLES = MODELS / "_evaluation" / "instrument-recognition"
MAX_SECONDS = 30.0


def sample_rows() -> list[dict[str, str]]:
    with (SAMPLES / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def load_runtime(name: str) -> ModelRuntime:
    model_dir = MODELS / name / "1"
    manifest = read_manifest(model_dir / "manifest.json")
    # The registry refuses an artifact whose hash differs; so does this test.
    digest = hashlib.sha256((model_dir / manifest.artifact).read_bytes()).hexdigest()
    assert digest == manifest.sha256
    runtime = runtime_class(manifest.framework)(manifest, model_dir, "auto")
    runtime.load()
    runtime.warm_up()
    return runtime


@pytest.fixture(scope="module")
def cnn() -> Iterator[ModelRuntime]:
    runtime = load_runtime("instrument-cnn")
    yield runtime
    runtime.unload()


@pytest.fixture(scope="module")
def mfcc() -> Iterator[ModelRuntime]:
    runtime = load_runtime("instrument-mfcc")
    yield runtime
    runtime.unload()


def decoded(file: str, fmt: str = "FLAC", subtype: str | None = None) -> AudioClip:
    data = (SAMPLES / file).read_bytes()
    if fmt != "FLAC":
        samples, rate = soundfile.read(io.BytesIO(data))
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
        data = buffer.getvalue()
    return decode_audio(data, MAX_SECONDS)


def test_sample_set_covers_every_label() -> None:
    manifest = read_manifest(MODELS / "instrument-cnn" / "1" / "manifest.json")

    assert {row["label"] for row in sample_rows()} == set(manifest.output.labels)
    assert isinstance(manifest.input, AudioInput)
    assert manifest.architecture == "ml.audio_cnn:InstrumentCNN"


@pytest.mark.parametrize("row", sample_rows(), ids=lambda row: row["file"])
def test_cnn_predicts_the_sample_clips(cnn: ModelRuntime, row: dict[str, str]) -> None:
    [prediction] = cnn.predict([decoded(row["file"])])

    assert prediction.label == row["label"]
    assert list(prediction.probabilities) == cnn.manifest.output.labels
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_mfcc_matches_its_recorded_accuracy_on_the_samples(mfcc: ModelRuntime) -> None:
    rows = sample_rows()

    predictions = mfcc.predict([decoded(row["file"]) for row in rows])

    accuracy = np.mean([p.label == row["label"] for p, row in zip(predictions, rows, strict=True)])
    [recorded] = [e for e in mfcc.manifest.evaluations if e.dataset.startswith("_evaluation")]
    assert accuracy == pytest.approx(recorded.metrics["accuracy"], abs=1e-4)
    assert accuracy >= 0.75
    for prediction in predictions:
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("WAV", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")]
)
def test_cnn_answers_the_same_for_other_formats(cnn: ModelRuntime, fmt: str, subtype: str) -> None:
    row = sample_rows()[0]

    [prediction] = cnn.predict([decoded(row["file"], fmt, subtype)])

    assert prediction.label == row["label"]


def test_cnn_handles_other_rates_stereo_and_long_uploads(cnn: ModelRuntime) -> None:
    import librosa

    row = sample_rows()[-1]
    clip = decoded(row["file"])
    at_44k = librosa.resample(clip.samples, orig_sr=clip.sample_rate, target_sr=44_100)
    # Three repeats of the note, in stereo, at 44.1 kHz: 6 s, judged over several windows.
    long_stereo = np.tile(np.stack([at_44k, at_44k], axis=1), (3, 1))
    buffer = io.BytesIO()
    soundfile.write(buffer, long_stereo, 44_100, format="WAV", subtype="PCM_16")

    [prediction] = cnn.predict([decode_audio(buffer.getvalue(), MAX_SECONDS)])

    assert prediction.label == row["label"]


def test_batch_predictions_equal_single_ones(cnn: ModelRuntime) -> None:
    clips = [decoded(row["file"]) for row in sample_rows()[:3]]

    batch = cnn.predict(clips)

    for clip, together in zip(clips, batch, strict=True):
        [alone] = cnn.predict([clip])
        assert alone.label == together.label
        for label, probability in alone.probabilities.items():
            assert together.probabilities[label] == pytest.approx(probability, abs=1e-4)


@pytest.mark.parametrize("name", ["instrument-cnn", "instrument-mfcc"])
def test_runtimes_reject_what_is_not_audio(
    name: str, cnn: ModelRuntime, mfcc: ModelRuntime
) -> None:
    runtime = cnn if name == "instrument-cnn" else mfcc

    with pytest.raises(InvalidInputError) as error:
        runtime.predict([{"Age": 30}])
    assert "file" in error.value.problems
    with pytest.raises(InvalidInputError):
        runtime.predict([])


@pytest.mark.parametrize("name", ["instrument-cnn", "instrument-mfcc"])
def test_predict_before_load_is_a_runtime_error(name: str) -> None:
    model_dir = MODELS / name / "1"
    manifest = read_manifest(model_dir / "manifest.json")
    runtime = runtime_class(manifest.framework)(manifest, model_dir, "cpu")
    clip = decoded(sample_rows()[0]["file"])

    with pytest.raises(ModelRuntimeError):
        runtime.predict([clip])
    runtime.load()
    assert runtime.ready
    runtime.unload()
    assert not runtime.ready
    with pytest.raises(ModelRuntimeError):
        runtime.predict([clip])
