"""What every audio runtime shares: the manifest's audio schema, feature parameters, warm-up,
and the prediction itself: each clip cut into feature windows, every window of every clip
scored in one batch, each clip answered with the mean of its windows.

Imports numpy only: each runtime brings its own feature stack (librosa, or ``ml.log_mel``).
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml import log_mel
from ml.audio import AudioClip
from ml.errors import InvalidInputError, ModelRuntimeError
from ml.log_mel import FeatureParams
from ml.manifest import AudioInput, ModelManifest
from ml.runtime import ModelRuntime, Prediction

logger = logging.getLogger(__name__)


class AudioRuntime(ModelRuntime):
    """A model that scores fixed-length feature windows of an uploaded clip."""

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        if not isinstance(manifest.input, AudioInput):
            raise ModelRuntimeError(f"{manifest.ref} does not take audio input")
        self.input: AudioInput = manifest.input
        self.params = FeatureParams.from_manifest(self.input.features)
        self.labels = list(manifest.output.labels)

    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        if not self.ready:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        windows = [self._clip_windows(clip) for clip in _clips(instances)]
        probabilities = self._window_probabilities(np.concatenate(windows))
        return [
            Prediction(
                label=self.labels[int(np.argmax(row))],
                probabilities={label: float(p) for label, p in zip(self.labels, row, strict=True)},
            )
            for row in _mean_per_clip(probabilities, windows)
        ]

    def warm_up(self) -> None:
        started = time.perf_counter()
        # Another rate than the model's, so that the resampler is warmed up as well.
        self.predict([synthetic_clip(44_100, self.input.clip_seconds + 1.5)])
        logger.info("warmed up %s in %.2f s", self.manifest.ref, time.perf_counter() - started)

    def mel_filterbank(self) -> np.ndarray:
        """(n_mels, 1 + n_fft / 2) float32: the filterbank stored beside the model
        (``input.mel_filterbank``), checked against the features; for a model that stores
        none, the same one built by ``ml.log_mel``."""
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

    @abstractmethod
    def _clip_windows(self, clip: AudioClip) -> np.ndarray:
        """The clip's feature windows, one per row."""

    @abstractmethod
    def _window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        """One row of label probabilities (manifest order) per window."""


def synthetic_clip(sample_rate: int, seconds: float) -> AudioClip:
    """A harmonic tone with a decay: exercises every step of the feature path."""
    time_axis = np.arange(int(sample_rate * seconds), dtype=np.float32) / sample_rate
    tone = sum(np.sin(2 * np.pi * 220.0 * k * time_axis) / k for k in range(1, 6))
    samples = (0.3 * tone * np.exp(-time_axis)).astype(np.float32)
    return AudioClip(
        samples=samples, sample_rate=sample_rate, duration_seconds=seconds, format="wav"
    )


def _clips(instances: Sequence[Any]) -> list[AudioClip]:
    if not instances:
        raise InvalidInputError({"file": "no audio clip to predict"})
    for instance in instances:
        if not isinstance(instance, AudioClip):
            raise InvalidInputError({"file": "an audio model needs an uploaded audio file"})
    return list(instances)


def _mean_per_clip(window_probabilities: np.ndarray, windows: list[np.ndarray]) -> np.ndarray:
    """Rows of ``window_probabilities`` follow ``windows`` clip by clip: average each clip's."""
    bounds = np.cumsum([0] + [len(window) for window in windows])
    return np.stack(
        [
            window_probabilities[start:end].mean(axis=0)
            for start, end in zip(bounds[:-1], bounds[1:], strict=True)
        ]
    )
