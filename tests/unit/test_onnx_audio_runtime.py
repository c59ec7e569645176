"""instrument-cnn@2: the CNN exported to ONNX, served on numpy log-mel, proven on the clips."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ml import features
from ml.audio import decode_audio
from ml.errors import ModelRuntimeError
from ml.manifest import AudioInput, read_manifest, sha256_file
from ml.onnx_audio_runtime import OnnxAudioRuntime
from ml.packaging import export_audio_onnx
from ml.runtime import runtime_class
from tests.helpers import MODELS_DIR

SERVED = MODELS_DIR / "instrument-cnn" / "2"
SAMPLES = MODELS_DIR / "_evaluation" / "instrument-recognition"


@pytest.fixture(scope="module")
def runtime() -> Iterator[OnnxAudioRuntime]:
    manifest = read_manifest(SERVED / "manifest.json")
    served = runtime_class(manifest.framework)(manifest, SERVED)
    assert isinstance(served, OnnxAudioRuntime)
    served.load()
    served.warm_up()
    yield served
    served.unload()


def test_every_file_it_reads_is_hashed_in_the_manifest() -> None:
    manifest = read_manifest(SERVED / "manifest.json")
    files = dict(manifest.artifact_files())
    assert set(files) == {"model.onnx", "model.pt", "mel_filterbank.npy"}
    assert all(sha256_file(SERVED / name) == digest for name, digest in files.items())


def test_the_conversion_proof_is_recorded() -> None:
    conversion = read_manifest(SERVED / "manifest.json").conversion
    assert conversion is not None and conversion.source_artifact == "model.pt"
    assert conversion.rows == len(list(SAMPLES.glob("*.flac")))
    assert conversion.same_labels
    assert conversion.max_logit_difference is not None
    assert conversion.max_logit_difference <= export_audio_onnx.MAX_LOGIT_DIFFERENCE
    assert conversion.max_probability_difference <= export_audio_onnx.MAX_PROBABILITY_DIFFERENCE


def test_the_stored_filterbank_is_librosas() -> None:
    manifest = read_manifest(SERVED / "manifest.json")
    assert isinstance(manifest.input, AudioInput) and manifest.input.mel_filterbank is not None
    stored = np.load(SERVED / manifest.input.mel_filterbank.file)
    params = features.FeatureParams.from_manifest(manifest.input.features)
    np.testing.assert_array_equal(
        stored, features.mel_filterbank(manifest.input.sample_rate, params)
    )


def test_it_recognises_every_sample_clip(runtime: OnnxAudioRuntime) -> None:
    with (SAMPLES / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    clips = [decode_audio((SAMPLES / row["file"]).read_bytes(), 30.0) for row in rows]
    predictions = runtime.predict(clips)
    assert [p.label for p in predictions] == [row["label"] for row in rows]
    assert all(sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5) for p in predictions)


def test_a_manifest_without_a_filterbank_is_refused() -> None:
    manifest = read_manifest(SERVED / "manifest.json")
    assert isinstance(manifest.input, AudioInput)
    bare = manifest.model_copy(
        update={"input": manifest.input.model_copy(update={"mel_filterbank": None})}
    )
    with pytest.raises(ModelRuntimeError, match="no mel filterbank"):
        OnnxAudioRuntime(bare, SERVED)


def test_export_writes_a_proven_onnx_version(tmp_path: Path) -> None:
    store = tmp_path / "models"
    shutil.copytree(MODELS_DIR / "instrument-cnn" / "1", store / "instrument-cnn" / "1")
    shutil.copytree(SAMPLES, store / "_evaluation" / "instrument-recognition")

    manifest = export_audio_onnx.export(
        store / "instrument-cnn" / "1", store / "instrument-cnn" / "3"
    )

    assert (manifest.version, manifest.framework) == ("3", "onnx-audio")
    assert manifest.conversion is not None and manifest.conversion.same_labels
    assert read_manifest(store / "instrument-cnn" / "1" / "manifest.json").framework == (
        "torch-audio"
    )
