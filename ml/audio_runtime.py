"""What every audio runtime shares: the manifest's audio schema, feature parameters, warm-up,
and turning per-window probabilities into one answer per clip.

Imports librosa (through ``ml.features``): only audio runtimes import this module.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ml import features
from ml.audio import audio_input, synthetic_clip
from ml.manifest import ModelManifest
from ml.runtime import ModelRuntime

logger = logging.getLogger(__name__)


class AudioRuntime(ModelRuntime):
    """A model that predicts from fixed-length windows of an uploaded clip."""

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        self.input = audio_input(manifest)
        self.params = features.FeatureParams.from_manifest(self.input.features)
        self.labels = list(manifest.output.labels)

    def warm_up(self) -> None:
        started = time.perf_counter()
        # Another rate than the model's, so that the resampler is warmed up as well.
        self.predict([synthetic_clip(44_100, self.input.clip_seconds + 1.5)])
        logger.info("warmed up %s in %.2f s", self.manifest.ref, time.perf_counter() - started)


def mean_per_clip(window_probabilities: np.ndarray, windows: list[np.ndarray]) -> np.ndarray:
    """Rows of ``window_probabilities`` follow ``windows`` clip by clip: average each clip's."""
    bounds = np.cumsum([0] + [len(window) for window in windows])
    return np.stack([window_probabilities[start:end].mean(axis=0)
                     for start, end in zip(bounds[:-1], bounds[1:], strict=True)])
