"""A stand-in for every runtime under ``ENV=test``: no artifact, no torch, no librosa.

Answers are deterministic functions of the input, so tests can compare two calls, and
the input still goes through the real validation and tracing code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ml.runtime import ModelRuntime, Prediction


class MockRuntime(ModelRuntime):
    framework: ClassVar[str] = "mock"
    needs_artifact: ClassVar[bool] = False
    runs_inline = True

    def load(self) -> None:
        self.ready = True

    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        return [self._predict_one(instance) for instance in instances]

    def _predict_one(self, instance: Any) -> Prediction:
        weights = np.frombuffer(hashlib.sha256(_fingerprint(instance)).digest(), dtype=np.uint8)
        labels = self.manifest.output.labels
        raw = weights[: len(labels)].astype(np.float64) + 1.0
        shares = raw / raw.sum()
        probabilities = {label: float(v) for label, v in zip(labels, shares, strict=True)}
        label = max(probabilities, key=probabilities.__getitem__)
        return Prediction(label=label, probabilities=probabilities)


def _fingerprint(instance: Any) -> bytes:
    samples = getattr(instance, "samples", None)
    if isinstance(samples, np.ndarray):
        return samples.tobytes()
    return json.dumps(instance, sort_keys=True, default=str).encode()
