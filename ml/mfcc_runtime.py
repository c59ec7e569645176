"""scikit-learn audio runtime: MFCC statistics (numpy) into a joblib-saved classifier.

The comparison candidate for the CNN. Neither torch nor librosa here: ``ml.mfcc`` computes
the statistics the model was trained on (``ml.features``, librosa) in numpy, through the mel
filterbank stored beside the model (``input.mel_filterbank``) or, for a model that stores
none, the same filterbank built by ``ml.log_mel.mel_filterbank``. The registry checks the
artifact's sha256 before ``load`` unpickles it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ml import log_mel, mfcc
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
        filterbank = self._load_filterbank()
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

    def _load_filterbank(self) -> np.ndarray:
        if self.input.mel_filterbank is None:
            return log_mel.mel_filterbank(self.input.sample_rate, self.params)
        filterbank = np.load(self.model_dir / self.input.mel_filterbank.file, allow_pickle=False)
        expected = (self.params.n_mels, self.params.n_fft // 2 + 1)
        if filterbank.shape != expected:
            raise ModelRuntimeError(
                f"{self.manifest.ref}: mel filterbank of shape {list(filterbank.shape)}, "
                f"the features need {list(expected)}"
            )
        return np.asarray(filterbank, dtype=np.float32)

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
