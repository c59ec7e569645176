"""scikit-learn audio runtime: MFCC statistics (numpy) into a scikit-learn classifier.

The comparison candidate for the CNN. Neither torch nor librosa here: ``ml.mfcc`` computes
the statistics the model was trained on (``ml.features``, librosa) in numpy, through the mel
filterbank stored beside the model (``input.mel_filterbank``) or, for a model that stores
none, the same filterbank built by ``ml.log_mel.mel_filterbank``.

A model whose manifest carries a ``linear-softmax`` compiled form (instrument-mfcc) is served
from it (``ml.linear_softmax``): no pickle is read and scikit-learn is not imported, whose
import alone costs a second and 120 MB. Any other is loaded by joblib, once the registry has
checked the artifact's sha256.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ml import mfcc
from ml.audio import AudioClip
from ml.audio_runtime import AudioRuntime
from ml.errors import ModelRuntimeError
from ml.linear_softmax import SOFTMAX_KIND, LinearPipeline
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
        filterbank = self.mel_filterbank()
        compiled = self._compiled()
        model: Any = self._unpickled() if compiled is None else compiled
        classes = [str(label) for label in getattr(model, "classes_", [])]
        if sorted(classes) != sorted(self.labels):
            raise ModelRuntimeError(
                f"{self.manifest.ref}: classifier classes {classes} differ from the manifest's"
            )
        self._columns = np.array([classes.index(label) for label in self.labels])
        self.model, self._filterbank = model, filterbank
        self.ready = True
        logger.info("loaded %s", self.manifest.ref)

    def _compiled(self) -> LinearPipeline | None:
        compiled = self.manifest.compiled
        if compiled is None:
            return None
        if compiled.kind != SOFTMAX_KIND:
            raise ModelRuntimeError(
                f"{self.manifest.ref}: an sklearn-audio model is served from a {SOFTMAX_KIND} "
                f"form, not a {compiled.kind} one"
            )
        text = (self.model_dir / compiled.artifact).read_text(encoding="utf-8")
        try:
            return LinearPipeline.from_dict(json.loads(text))
        except ValueError as error:  # not JSON, or not this form (CompiledFormError)
            raise ModelRuntimeError(f"{self.manifest.ref}: bad compiled form: {error}") from error

    def _unpickled(self) -> Any:
        import joblib  # only here: a compiled model is served without it

        return joblib.load(self.artifact_path)

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
