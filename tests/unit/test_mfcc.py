"""The serving MFCC statistics (numpy, ``ml.mfcc``) against librosa's, the training ones, and
instrument-mfcc's answers on them against its answers on librosa's; its pipeline read without
scikit-learn against scikit-learn's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import librosa
import numpy as np
import pytest
import soundfile
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml import features, log_mel, mfcc
from ml.audio import decode_audio
from ml.manifest import read_manifest
from ml.mfcc_runtime import LinearPipeline, MfccSklearnRuntime, read_linear_pipeline
from tests.helpers import MODELS_DIR

RATE = 22_050
CLIP = 2.0
PARAMS = log_mel.FeatureParams()
FILTERBANK = log_mel.mel_filterbank(RATE, PARAMS)
CLIPS = sorted((MODELS_DIR / "_evaluation" / "instrument-recognition").glob("*.flac"))
SERVED = MODELS_DIR / "instrument-mfcc" / "1"


def _signals() -> list[tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(0)
    t = np.arange(5 * 44_100) / 44_100
    harmonic = sum(np.sin(2 * np.pi * 196.0 * k * t) / k for k in range(1, 10)) * np.exp(-t)
    return [
        ("harmonic 44.1 kHz, 5 s", (0.3 * harmonic).astype(np.float32), 44_100),
        ("noise 16 kHz, 1 s", (0.1 * rng.standard_normal(16_000)).astype(np.float32), 16_000),
        ("silence 22.05 kHz", np.zeros(RATE, np.float32), RATE),
    ]


@pytest.mark.parametrize("rate", [22_050, 44_100, 48_000])
def test_the_numpy_filterbank_is_librosas_to_the_bit(rate: int) -> None:
    np.testing.assert_array_equal(
        log_mel.mel_filterbank(rate, PARAMS), features.mel_filterbank(rate, PARAMS)
    )


def test_the_dct_and_the_deltas_are_librosas() -> None:
    db = (-80 * np.random.default_rng(2).random((3, 64, 87))).astype(np.float32)
    expected = librosa.feature.mfcc(S=db, n_mfcc=20)
    actual = mfcc.mfcc_from_db(db, 20)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(
        mfcc.delta(expected), librosa.feature.delta(expected, mode="nearest"), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("path", CLIPS, ids=[path.stem for path in CLIPS])
def test_the_evaluation_clips_have_librosas_mfcc_statistics(path: Path) -> None:
    samples, rate = soundfile.read(path, dtype="float32")
    expected = features.mfcc_statistics(samples, rate, RATE, CLIP, PARAMS)
    actual = mfcc.mfcc_statistics(samples, rate, RATE, CLIP, PARAMS, FILTERBANK)
    assert actual.shape == expected.shape and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=0, atol=mfcc.LIBROSA_TOLERANCE)


@pytest.mark.parametrize(("name", "samples", "rate"), _signals(), ids=lambda v: str(v)[:20])
def test_other_rates_and_signals_have_librosas_mfcc_statistics(
    name: str, samples: np.ndarray, rate: int
) -> None:
    expected = features.mfcc_statistics(samples, rate, RATE, CLIP, PARAMS)
    actual = mfcc.mfcc_statistics(samples, rate, RATE, CLIP, PARAMS, FILTERBANK)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=mfcc.LIBROSA_TOLERANCE)


class _LibrosaMfccRuntime(MfccSklearnRuntime):
    """instrument-mfcc on the training stack's features: the reference."""

    def _clip_windows(self, clip):  # type: ignore[no-untyped-def]
        return features.mfcc_statistics(clip.samples, clip.sample_rate, RATE, CLIP, self.params)


@pytest.fixture(scope="module")
def runtimes() -> Iterator[tuple[MfccSklearnRuntime, MfccSklearnRuntime]]:
    manifest = read_manifest(SERVED / "manifest.json")
    served, reference = MfccSklearnRuntime(manifest, SERVED), _LibrosaMfccRuntime(manifest, SERVED)
    served.load()
    reference.load()
    yield served, reference
    served.unload()
    reference.unload()


def test_instrument_mfcc_answers_as_on_librosas_features(
    runtimes: tuple[MfccSklearnRuntime, MfccSklearnRuntime],
) -> None:
    served, reference = runtimes
    clips = [decode_audio(path.read_bytes(), 30.0) for path in CLIPS]
    actual, expected = served.predict(clips), reference.predict(clips)
    assert [p.label for p in actual] == [p.label for p in expected]
    for mine, theirs in zip(actual, expected, strict=True):
        for label, probability in theirs.probabilities.items():
            assert mine.probabilities[label] == pytest.approx(probability, abs=1e-4)


def test_instrument_mfcc_is_read_without_scikit_learn_and_answers_as_its_pipeline() -> None:
    pipeline = joblib.load(SERVED / "model.joblib")
    linear = read_linear_pipeline(SERVED / "model.joblib")
    assert isinstance(linear, LinearPipeline)
    assert list(linear.classes_) == list(pipeline.classes_)
    windows = np.concatenate(
        [
            mfcc.mfcc_statistics(
                *soundfile.read(path, dtype="float32"), RATE, CLIP, PARAMS, FILTERBANK
            )
            for path in CLIPS
        ]
    )
    np.testing.assert_array_equal(linear.predict_proba(windows), pipeline.predict_proba(windows))


@pytest.mark.parametrize("classes", [2, 3])
def test_other_scaler_and_logistic_pipelines_are_read_exactly(tmp_path: Path, classes: int) -> None:
    rng = np.random.default_rng(classes)
    x = rng.standard_normal((200, 6)).astype(np.float32) * [1, 2, 3, 4, 5, 6] + 7
    y = rng.integers(0, classes, 200).astype(str)
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    joblib.dump(fitted, tmp_path / "model.joblib")
    linear = read_linear_pipeline(tmp_path / "model.joblib")
    assert linear is not None
    np.testing.assert_allclose(linear.predict_proba(x), fitted.predict_proba(x), rtol=0, atol=1e-6)


def test_any_other_pickle_is_left_to_scikit_learn(tmp_path: Path) -> None:
    x, y = np.eye(4, dtype=np.float32), ["a", "b", "a", "b"]
    joblib.dump(make_pipeline(StandardScaler(), GaussianNB()).fit(x, y), tmp_path / "nb.joblib")
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    joblib.dump(fitted, tmp_path / "compressed.joblib", compress=3)
    assert read_linear_pipeline(tmp_path / "nb.joblib") is None
    assert read_linear_pipeline(tmp_path / "compressed.joblib") is None
