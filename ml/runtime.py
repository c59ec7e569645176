"""One interface for every framework: load, predict, unload, warm up."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from ml.manifest import ModelManifest, TabularInput
from ml.tabular import TabularValidator


@dataclass(frozen=True, slots=True)
class Prediction:
    """One answer: the label and the probability of every label."""

    label: str
    probabilities: dict[str, float]


class ModelRuntime(ABC):
    """A model of one framework, loaded from its artifact.

    Runtimes are synchronous; the API calls them from a worker thread unless
    ``runs_inline`` says a prediction costs only microseconds.
    """

    framework: ClassVar[str]
    needs_artifact: ClassVar[bool] = True
    """False for runtimes that read no artifact (the test mock): no hash to check."""
    runs_inline: bool = False
    """True when ``predict`` costs microseconds and may run on the event loop itself."""

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        self.manifest = manifest
        self.model_dir = model_dir
        self.device = device
        self.ready = False

    @property
    def artifact_path(self) -> Path:
        return self.model_dir / self.manifest.artifact

    @cached_property
    def tabular_validator(self) -> TabularValidator | None:
        """Checks request rows against this model's input schema; None for non-tabular input.

        Built once per runtime: the per-request validation only runs the precompiled checks.
        """
        schema = self.manifest.input
        return TabularValidator(schema) if isinstance(schema, TabularInput) else None

    @abstractmethod
    def load(self) -> None:
        """Read the artifact (its sha256 was already checked) and prepare to predict."""

    @abstractmethod
    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        """Predict validated instances: feature dicts (tabular) or ``AudioClip``s (audio)."""

    def warm_up(self) -> None:  # noqa: B027 (optional hook: cheap models need no warm-up)
        """Run the whole prediction path once so that no user request pays first-call costs."""

    def unload(self) -> None:
        """Free what ``load`` took."""
        self.ready = False


# NOTE: import paths, not classes, so that torch and librosa are imported only when
# a model of that framework is first loaded.
RUNTIME_BY_FRAMEWORK: dict[str, str] = {
    "sklearn": "ml.sklearn_runtime:SklearnRuntime",
    "torch-audio": "ml.torch_audio_runtime:TorchAudioRuntime",
    "sklearn-audio": "ml.mfcc_runtime:MfccSklearnRuntime",
    "onnx": "ml.onnx_runtime:OnnxRuntime",
    "onnx-audio": "ml.onnx_audio_runtime:OnnxAudioRuntime",
}


def runtime_class(framework: str) -> type[ModelRuntime]:
    """The runtime class of ``framework``; ``KeyError`` when it is unknown."""
    module_name, class_name = RUNTIME_BY_FRAMEWORK[framework].split(":")
    runtime_cls: type[ModelRuntime] = getattr(importlib.import_module(module_name), class_name)
    return runtime_cls
