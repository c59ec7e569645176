"""scikit-learn audio runtime: MFCC statistics (librosa) into a joblib-saved classifier.

The comparison candidate for the CNN. No torch here: only librosa and scikit-learn. The
registry checks the artifact's sha256 before ``load`` unpickles it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ml import features
from ml.audio import AudioClip, audio_input, check_clips, synthetic_clip, to_predictions
from ml.errors import ModelRuntimeError
from ml.manifest import ModelManifest
from ml.runtime import ModelRuntime, Prediction

logger = logging.getLogger(__name__)


class MfccSklearnRuntime(ModelRuntime):
    framework = "sklearn-audio"

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        self.input = audio_input(manifest)
        self.params = features.FeatureParams.from_manifest(self.input.features)
        self.labels = list(manifest.output.labels)
        self.model: Any = None
        self._columns: np.ndarray | None = None

    def load(self) -> None:
        model = joblib.load(self.artifact_path)
        classes = [str(label) for label in getattr(model, "classes_", [])]
        if sorted(classes) != sorted(self.labels):
            raise ModelRuntimeError(
                f"{self.manifest.ref}: classifier classes {classes} differ from the manifest's"
            )
        # predict_proba's columns follow classes_; answer in the manifest's label order.
        self._columns = np.array([classes.index(label) for label in self.labels])
        self.model = model
        self.ready = True
        logger.info("loaded %s", self.manifest.ref)

    def warm_up(self) -> None:
        started = time.perf_counter()
        self.predict([synthetic_clip(44_100, self.input.clip_seconds + 1.5)])
        logger.info("warmed up %s in %.2f s", self.manifest.ref,
                    time.perf_counter() - started)

    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        if self.model is None or self._columns is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        clips = check_clips(instances)
        windows = [self._statistics(clip) for clip in clips]
        try:
            probabilities = self.model.predict_proba(np.concatenate(windows))
        except ValueError as error:
            raise ModelRuntimeError(f"{self.manifest.ref} failed: {error}") from error
        probabilities = probabilities[:, self._columns]
        bounds = np.cumsum([0] + [len(w) for w in windows])
        per_clip = np.stack([probabilities[a:b].mean(axis=0)
                             for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        return to_predictions(per_clip, self.labels)

    def _statistics(self, clip: AudioClip) -> np.ndarray:
        return features.mfcc_statistics(clip.samples, clip.sample_rate, self.input.sample_rate,
                                        self.input.clip_seconds, self.params)

    def unload(self) -> None:
        self.model = None
        self._columns = None
        super().unload()
