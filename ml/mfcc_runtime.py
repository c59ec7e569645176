"""scikit-learn audio runtime: MFCC statistics (librosa) into a joblib-saved classifier.

The comparison candidate for the CNN. No torch here: only librosa and scikit-learn. The
registry checks the artifact's sha256 before ``load`` unpickles it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ml import features
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

    def load(self) -> None:
        model = joblib.load(self.artifact_path)
        classes = [str(label) for label in getattr(model, "classes_", [])]
        if sorted(classes) != sorted(self.labels):
            raise ModelRuntimeError(
                f"{self.manifest.ref}: classifier classes {classes} differ from the manifest's"
            )
        self._columns = np.array([classes.index(label) for label in self.labels])
        self.model = model
        self.ready = True
        logger.info("loaded %s", self.manifest.ref)

    def _clip_windows(self, clip: AudioClip) -> np.ndarray:
        return features.mfcc_statistics(
            clip.samples,
            clip.sample_rate,
            self.input.sample_rate,
            self.input.clip_seconds,
            self.params,
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
        super().unload()
