"""scikit-learn audio runtime: MFCC statistics (numpy) into a joblib-saved classifier.

The comparison candidate for the CNN. Neither torch nor librosa here: ``ml.mfcc`` computes
the statistics the model was trained on (``ml.features``, librosa) in numpy, through the mel
filterbank stored beside the model (``input.mel_filterbank``) or, for a model that stores
none, the same filterbank built by ``ml.log_mel.mel_filterbank``. The registry checks the
artifact's sha256 before ``load`` unpickles it.

A ``StandardScaler`` + ``LogisticRegression`` pipeline (instrument-mfcc's) is read without
scikit-learn, whose import alone costs a second and 120 MB: an unpickler that knows only
those two estimators, the pipeline and numpy's arrays reads their fitted arrays into
``LinearPipeline``, which computes ``predict_proba`` as scikit-learn does, in the same dtypes
(``tests/unit/test_mfcc.py`` proves the two equal). Any other pickle is loaded by joblib.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ml import mfcc
from ml.audio import AudioClip
from ml.audio_runtime import AudioRuntime
from ml.errors import ModelRuntimeError
from ml.manifest import ModelManifest

logger = logging.getLogger(__name__)


class MfccSklearnRuntime(AudioRuntime):
    framework = "sklearn-audio"

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        self.model: Any = None
        self._columns: np.ndarray | None = None
        self._filterbank: np.ndarray | None = None

    def load(self) -> None:
        filterbank = self.mel_filterbank()
        model: Any = read_linear_pipeline(self.artifact_path)
        if model is None:
            model = joblib.load(self.artifact_path)
        classes = [str(label) for label in getattr(model, "classes_", [])]
        if sorted(classes) != sorted(self.labels):
            raise ModelRuntimeError(
                f"{self.manifest.ref}: classifier classes {classes} differ from the manifest's"
            )
        self._columns = np.array([classes.index(label) for label in self.labels])
        self.model, self._filterbank = model, filterbank
        self.ready = True
        logger.info("loaded %s", self.manifest.ref)

    def _clip_windows(self, clip: AudioClip) -> np.ndarray:
        if self._filterbank is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        return mfcc.mfcc_statistics(
            clip.samples,
            clip.sample_rate,
            self.input.sample_rate,
            self.input.clip_seconds,
            self.params,
            self._filterbank,
        )

    def _window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        model, columns = self.model, self._columns
        if model is None or columns is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        try:
            # predict_proba's columns follow classes_; answer in the manifest's label order.
            probabilities: np.ndarray = model.predict_proba(windows)[:, columns]
            return probabilities
        except ValueError as error:
            raise ModelRuntimeError(f"{self.manifest.ref} failed: {error}") from error

    def unload(self) -> None:
        self.model = None
        self._columns = None
        self._filterbank = None
        super().unload()


@dataclass(frozen=True)
class LinearPipeline:
    """A fitted ``StandardScaler`` + ``LogisticRegression`` pipeline's arithmetic."""

    mean: np.ndarray | None
    scale: np.ndarray | None
    coef: np.ndarray
    intercept: np.ndarray
    classes_: np.ndarray

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``Pipeline.predict_proba``: scaled in place in the features' own float dtype, the
        scaler's arrays cast to it, as ``StandardScaler.transform`` does, then the logistic
        (two classes) or the softmax, in place as scikit-learn's."""
        x = np.array(features, dtype=features.dtype if features.dtype.kind == "f" else float)
        if x.ndim != 2 or x.shape[1] != self.coef.shape[1]:
            raise ValueError(
                f"X has {x.shape[-1]} features, but the pipeline expects {self.coef.shape[1]}"
            )
        if self.mean is not None:
            x -= self.mean.astype(x.dtype)
        if self.scale is not None:
            x /= self.scale.astype(x.dtype)
        scores: np.ndarray = x @ self.coef.T + self.intercept
        if len(self.classes_) <= 2:
            positive = 1.0 / (1.0 + np.exp(-scores.ravel()))
            return np.stack([1.0 - positive, positive], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores


class _Fitted:
    """Stands in for one estimator of the pipeline: its pickled attributes, nothing else."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _Pipeline(_Fitted):
    pass


class _Scaler(_Fitted):
    pass


class _Logistic(_Fitted):
    pass


class _OtherPickle(Exception):
    """The pickle holds something other than the pipeline shape read here."""


_STAND_INS: dict[tuple[str, str], type] = {
    ("sklearn.pipeline", "Pipeline"): _Pipeline,
    ("sklearn.preprocessing._data", "StandardScaler"): _Scaler,
    ("sklearn.linear_model._logistic", "LogisticRegression"): _Logistic,
}


def read_linear_pipeline(path: Path) -> LinearPipeline | None:
    """The pipeline at ``path`` (a joblib pickle) as a ``LinearPipeline``, without importing
    scikit-learn; None when it is not an uncompressed scaler + logistic regression pipeline."""
    from joblib.numpy_pickle import NumpyUnpickler  # type: ignore[import-untyped]

    class _Unpickler(NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) in _STAND_INS:
                return _STAND_INS[module, name]
            if module.split(".")[0] in ("numpy", "joblib") or (module, name) == (
                "builtins",
                "slice",
            ):
                return super().find_class(module, name)
            raise _OtherPickle(f"{module}.{name}")

    with path.open("rb") as handle:
        if handle.read(1) != pickle.PROTO:  # compressed by joblib: leave it to joblib.load
            return None
        handle.seek(0)
        try:
            pipeline = _Unpickler(str(path), handle, ensure_native_byte_order=True).load()
        except _OtherPickle as other:
            logger.debug("%s holds %s: loaded with scikit-learn", path, other)
            return None
    return _linear(pipeline)


def _linear(pipeline: Any) -> LinearPipeline | None:
    steps = [step for _, step in getattr(pipeline, "steps", [])]
    if not isinstance(pipeline, _Pipeline) or [type(step) for step in steps] != [
        _Scaler,
        _Logistic,
    ]:
        return None
    scaler, logistic = steps
    state = vars(scaler)
    return LinearPipeline(
        mean=state["mean_"] if state.get("with_mean", True) else None,
        scale=state["scale_"] if state.get("with_std", True) else None,
        coef=np.asarray(logistic.coef_),
        intercept=np.asarray(logistic.intercept_),
        classes_=np.asarray(logistic.classes_),
    )
