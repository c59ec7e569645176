"""The serving MFCC statistics (numpy, ``ml.mfcc``) against librosa's, the training ones, and
instrument-mfcc's answers on them against its answers on librosa's; its compiled form (read
without scikit-learn or a pickle) against its scikit-learn pipeline."""

from __future__ import annotations

import json
import shutil
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
from ml.compiled_form import CompiledFormError
from ml.errors import ModelRuntimeError
from ml.linear_softmax import LinearPipeline
from ml.manifest import read_manifest, write_manifest
from ml.mfcc_runtime import MfccSklearnRuntime
from ml.packaging.compile import UnsupportedPipeline, compiled_text
from ml.packaging.compile_softmax import compile_scaler_logistic, write_proven_form
from tests.helpers import MODELS_DIR, varied_signals

RATE = 22_050
CLIP = 2.0
PARAMS = log_mel.FeatureParams()
FILTERBANK = log_mel.mel_filterbank(RATE, PARAMS)
CLIPS = sorted((MODELS_DIR / "_evaluation" / "instrument-recognition").glob("*.flac"))
SERVED = MODELS_DIR / "instrument-mfcc" / "1"


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


@pytest.mark.parametrize(
    ("name", "samples", "rate"), varied_signals(5.0), ids=lambda v: str(v)[:20]
)
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


def _windows() -> np.ndarray:
    return np.concatenate(
        [
            mfcc.mfcc_statistics(
                *soundfile.read(path, dtype="float32"), RATE, CLIP, PARAMS, FILTERBANK
            )
            for path in CLIPS
        ]
    )


def _read_back(form: LinearPipeline) -> LinearPipeline:
    """The form as serving reads it: from its file's text."""
    return LinearPipeline.from_dict(json.loads(compiled_text(form)))


def test_instrument_mfcc_is_served_from_its_compiled_form_which_answers_as_its_pipeline() -> None:
    manifest = read_manifest(SERVED / "manifest.json")
    assert manifest.compiled is not None and manifest.compiled.kind == "linear-softmax"
    served = LinearPipeline.from_dict(json.loads((SERVED / manifest.compiled.artifact).read_text()))
    pipeline = joblib.load(SERVED / "model.joblib")
    assert list(served.classes_) == list(pipeline.classes_)
    windows = _windows()
    # Exactly, in the pipeline's own dtypes (its weights are float32: it was fitted on float32).
    np.testing.assert_array_equal(served.predict_proba(windows), pipeline.predict_proba(windows))
    runtime = MfccSklearnRuntime(manifest, SERVED)
    runtime.load()
    assert isinstance(runtime.model, LinearPipeline)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 3])
def test_other_scaler_and_logistic_pipelines_compile_exactly(classes: int, dtype: type) -> None:
    rng = np.random.default_rng(classes)
    x = (rng.standard_normal((200, 6)) * [1, 2, 3, 4, 5, 6] + 7).astype(dtype)
    y = rng.integers(0, classes, 200).astype(str)
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    form = _read_back(compile_scaler_logistic(fitted))
    if classes > 2:
        np.testing.assert_array_equal(form.predict_proba(x), fitted.predict_proba(x))
    else:  # scikit-learn's logistic is scipy's expit, which rounds a bit differently
        np.testing.assert_array_max_ulp(form.predict_proba(x), fitted.predict_proba(x), maxulp=4)


def test_other_pipelines_get_no_compiled_form(tmp_path: Path) -> None:
    x, y = np.eye(4, dtype=np.float32), ["a", "b", "a", "b"]
    naive_bayes = make_pipeline(StandardScaler(), GaussianNB()).fit(x, y)
    with pytest.raises(UnsupportedPipeline, match="GaussianNB"):
        compile_scaler_logistic(naive_bayes)
    with pytest.raises(UnsupportedPipeline, match="not fitted"):
        compile_scaler_logistic(make_pipeline(StandardScaler(), LogisticRegression()))
    assert write_proven_form(naive_bayes, x, tmp_path, "model.compiled.json") is None
    assert not (tmp_path / "model.compiled.json").exists()


def test_a_model_without_a_compiled_form_is_read_by_scikit_learn(tmp_path: Path) -> None:
    # A user's own sklearn-audio pipeline: its pickle, loaded by joblib once its hash is checked.
    shutil.copytree(SERVED, tmp_path / "1")
    manifest = read_manifest(SERVED / "manifest.json").model_copy(update={"compiled": None})
    write_manifest(manifest, tmp_path / "1")
    (tmp_path / "1" / "model.compiled.json").unlink()
    runtime = MfccSklearnRuntime(read_manifest(tmp_path / "1" / "manifest.json"), tmp_path / "1")
    runtime.load()
    assert not isinstance(runtime.model, LinearPipeline)
    clips = [decode_audio(path.read_bytes(), 30.0) for path in CLIPS]
    compiled = MfccSklearnRuntime(read_manifest(SERVED / "manifest.json"), SERVED)
    compiled.load()
    assert runtime.predict(clips) == compiled.predict(clips)


def _form() -> dict[str, object]:
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        np.eye(3, dtype=np.float32), ["a", "b", "c"]
    )
    return compile_scaler_logistic(fitted).to_dict()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"link": "logistic"}, "format, kind and link"),
        ({"dtypes": {"mean": "float64", "scale": "float64", "coef": "float16"}}, "coef is 'f"),
        ({"dtypes": {}}, "dtype of mean is None"),
        ({"coef": [[1.0, 2.0, 3.0]]}, "3 classes need 3 rows"),
        ({"coef": [[1.0], [2.0, 3.0], [4.0]]}, "differ in length"),
        ({"scale": [1.0]}, "mean and scale need 3 numbers each"),
        ({"intercept": [1.0, "2", 3.0]}, "expected a finite number"),
        ({"classes": ["a"]}, "1 classes need"),
        ({"scale": [1.0, 0.0, 1.0]}, "scale holds a value it cannot have"),
        ({"coef": [[1e39, 0.0, 0.0], [0.0] * 3, [0.0] * 3]}, "coef holds a value it cannot"),
        ({"intercept": [10**400, 0.0, 0.0]}, "expected a finite number"),
    ],
)
def test_a_compiled_form_that_is_not_this_one_is_refused_saying_why(
    change: dict[str, object], words: str
) -> None:
    with pytest.raises(CompiledFormError, match=words):
        LinearPipeline.from_dict({**_form(), **change})


def test_a_proof_that_fails_is_an_error_not_a_model_served_otherwise(tmp_path: Path) -> None:
    x = np.eye(3, dtype=np.float32)
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, ["a", "b", "c"])
    # A classifier of this shape whose probabilities are not the softmax of its scores.
    fitted.predict_proba = lambda rows: np.full((len(rows), 3), 1 / 3)  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="differs from predict_proba on 3 rows"):
        write_proven_form(fitted, x, tmp_path, "model.compiled.json")
    assert not (tmp_path / "model.compiled.json").exists()


@pytest.mark.parametrize(
    ("compiled", "words"),
    [
        ('{"format": 1}', "bad compiled form: format, kind and link"),
        ("not json", "bad compiled form"),
    ],
)
def test_the_runtime_refuses_a_bad_compiled_form(tmp_path: Path, compiled: str, words: str) -> None:
    shutil.copytree(SERVED, tmp_path / "1")
    (tmp_path / "1" / "model.compiled.json").write_text(compiled)
    runtime = MfccSklearnRuntime(read_manifest(tmp_path / "1" / "manifest.json"), tmp_path / "1")
    with pytest.raises(ModelRuntimeError, match=words):
        runtime.load()


def test_the_runtime_refuses_a_compiled_form_of_another_kind() -> None:
    manifest = read_manifest(SERVED / "manifest.json")
    assert manifest.compiled is not None
    other = manifest.compiled.model_copy(update={"kind": "linear-logistic"})
    runtime = MfccSklearnRuntime(manifest.model_copy(update={"compiled": other}), SERVED)
    with pytest.raises(ModelRuntimeError, match="not a linear-logistic one"):
        runtime.load()
