"""Audio runtime of ONNX networks (framework "onnx-audio"): log-mel in numpy, ONNX Runtime.

What the torch runtime serves, without torch or librosa: ``ml.log_mel`` computes the features
from the mel filterbank stored beside the model (``input.mel_filterbank``), and ONNX Runtime
runs the network that ``ml.packaging.export_audio_onnx`` exported and proved equal to its
torch source. The graph takes (windows, n_mels, frames) log-mel and answers logits.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml import log_mel
from ml.audio import AudioClip
from ml.audio_runtime import AudioRuntime
from ml.errors import ModelRuntimeError
from ml.manifest import ModelManifest
from ml.onnx_runtime import open_session

logger = logging.getLogger(__name__)


class OnnxAudioRuntime(AudioRuntime):
    framework = "onnx-audio"

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        if self.input.mel_filterbank is None:
            raise ModelRuntimeError(
                f"{manifest.ref} names no mel filterbank (input.mel_filterbank)"
            )
        self._session: Any = None
        self._filterbank: np.ndarray | None = None
        self._input = ""

    def load(self) -> None:
        started = time.perf_counter()
        filterbank = self.mel_filterbank()
        try:
            session = open_session(self.artifact_path, self.device, self.manifest.ref)
        except Exception as error:  # onnxruntime's own errors: a broken or unsupported graph
            raise ModelRuntimeError(f"{self.manifest.ref} failed to load: {error!r}") from error
        self._session, self._filterbank = session, filterbank
        self._input = session.get_inputs()[0].name
        self.ready = True
        logger.info("Loaded %s in %.3f s", self.manifest.ref, time.perf_counter() - started)

    def _clip_windows(self, clip: AudioClip) -> np.ndarray:
        if self._filterbank is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        return log_mel.log_mel(
            clip.samples,
            clip.sample_rate,
            self.input.sample_rate,
            self.input.clip_seconds,
            self.params,
            self._filterbank,
        )

    def _window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        return softmax(self.logits(windows))

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """The network's (windows, labels) logits of (windows, n_mels, frames) log-mel."""
        if self._session is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        try:
            (logits,) = self._session.run(None, {self._input: windows})
        except Exception as error:  # the session's failures are the model's
            raise ModelRuntimeError(f"{self.manifest.ref} failed: {error!r}") from error
        result: np.ndarray = logits
        return result

    def unload(self) -> None:
        self._session = None
        self._filterbank = None
        super().unload()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by each row's maximum so that no exponential overflows."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities
