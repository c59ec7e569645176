"""PyTorch audio runtime: log-mel features (librosa) into a CNN named by the manifest.

The registry imports this module only when a "torch-audio" model is first loaded, so torch
and librosa stay out of the API's start-up. The artifact is a ``state_dict`` loaded with
``weights_only=True``: no pickled code runs, the architecture is our own code.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml import features
from ml.audio import AudioClip, check_clips, to_predictions
from ml.audio_runtime import AudioRuntime, mean_per_clip
from ml.errors import ModelRuntimeError
from ml.manifest import ModelManifest
from ml.runtime import Prediction

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``auto``: cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def import_architecture(path: str) -> type[torch.nn.Module]:
    """The ``module:Class`` network named in a manifest; only ``ml.`` modules are allowed."""
    module_name, _, class_name = path.partition(":")
    if not module_name.startswith("ml.") or not class_name:
        raise ModelRuntimeError(f"architecture {path!r} is not an ml.<module>:<Class> path")
    network = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(network, type) and issubclass(network, torch.nn.Module)):
        raise ModelRuntimeError(f"architecture {path!r} is not a torch.nn.Module")
    return network


class TorchAudioRuntime(AudioRuntime):
    framework = "torch-audio"

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        self.model: torch.nn.Module | None = None
        self.torch_device = resolve_device(device)

    def load(self) -> None:
        if not self.manifest.architecture:
            raise ModelRuntimeError(f"{self.manifest.ref} names no architecture")
        network = import_architecture(self.manifest.architecture)
        kwargs = dict(self.manifest.training.parameters.get("architecture_kwargs", {}))
        model = network(n_classes=len(self.labels), n_mels=self.params.n_mels, **kwargs)
        state = torch.load(self.artifact_path, map_location=self.torch_device, weights_only=True)
        model.load_state_dict(state)
        self.model = model.to(self.torch_device).eval()
        self.ready = True
        logger.info("loaded %s on %s", self.manifest.ref, self.torch_device)

    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        if self.model is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        clips = check_clips(instances)
        windows = [self._log_mel(clip) for clip in clips]
        try:
            probabilities = self._forward(windows)
        except RuntimeError as error:
            raise ModelRuntimeError(f"{self.manifest.ref} failed: {error}") from error
        return to_predictions(probabilities, self.labels)

    def _log_mel(self, clip: AudioClip) -> np.ndarray:
        return features.log_mel(clip.samples, clip.sample_rate, self.input.sample_rate,
                                self.input.clip_seconds, self.params)

    def _forward(self, windows: list[np.ndarray]) -> np.ndarray:
        """One batch for all windows of all clips; each clip gets its windows' mean."""
        assert self.model is not None
        batch = torch.from_numpy(np.concatenate(windows)).to(self.torch_device)
        with torch.inference_mode():
            probabilities = torch.softmax(self.model(batch), dim=1).cpu().numpy()
        return mean_per_clip(probabilities, windows)

    def unload(self) -> None:
        self.model = None
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()
        super().unload()
