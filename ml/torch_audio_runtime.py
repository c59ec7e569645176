"""PyTorch audio runtime: log-mel features (librosa) into a CNN named by the manifest.

The registry imports this module only when a "torch-audio" model is first loaded, so torch
and librosa stay out of the API's start-up. The artifact is a ``state_dict`` loaded with
``weights_only=True``: no pickled code runs, the architecture is our own code.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np
import torch

from ml import features
from ml.audio import AudioClip
from ml.audio_runtime import AudioRuntime
from ml.errors import ModelRuntimeError
from ml.manifest import ModelManifest

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

    def _clip_windows(self, clip: AudioClip) -> np.ndarray:
        return features.log_mel(
            clip.samples,
            clip.sample_rate,
            self.input.sample_rate,
            self.input.clip_seconds,
            self.params,
        )

    def _window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        model = self.model
        if model is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        batch = torch.from_numpy(windows).to(self.torch_device)
        try:
            with torch.inference_mode():
                return torch.softmax(model(batch), dim=1).cpu().numpy()
        except RuntimeError as error:
            raise ModelRuntimeError(f"{self.manifest.ref} failed: {error}") from error

    def unload(self) -> None:
        self.model = None
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()
        super().unload()
