"""Evaluate a registered model on its task's held-out set, for ``GET /models/{name}/evaluation``.

The model runs through the registry exactly as it serves, one sample at a time (so that the
latency is per row or clip), on the evaluation data its manifest names. Every model of a task
is evaluated on the same data, which is what makes the dashboard's comparison fair. A result
is computed on first request and kept for that model version; evaluation runs are not
client predictions, so they are neither traced nor counted in the prediction metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from ml.errors import describe_error
from ml.evaluation import (
    ClassScores,
    LatencySummary,
    RocCurve,
    classification_report,
    latency_summary,
)
from ml.evaluation_data import EvaluationSample, EvaluationUnavailableError, load_samples
from ml.manifest import Evaluation, ModelManifest
from ml.runtime import ModelRuntime, Prediction
from registry.catalogue import ModelEntry
from registry.registry import ModelRegistry

logger = logging.getLogger(__name__)


class EvaluationFailedError(Exception):
    """The model could not be loaded, or failed while predicting the evaluation set."""


class SamplePrediction(BaseModel):
    """One evaluation sample: its true label and the model's answer."""

    id: str = Field(description="row number (tabular) or clip file name (audio)")
    true_label: str
    predicted_label: str
    probabilities: dict[str, float]


class ModelEvaluation(BaseModel):
    """A model version's metrics on its task's evaluation set, measured by running it."""

    model: str
    version: str
    task: str
    runtime: str = Field(description="the runtime that predicted ('mock' under ENV=test)")
    dataset: str = Field(description="evaluation data, relative to the model store")
    dataset_description: str
    samples: int
    labels: list[str]
    positive_label: str | None
    decision_threshold: float | None
    metrics: dict[str, float]
    recorded_metrics: dict[str, float] = Field(
        description="what the manifest recorded for this data at training time"
    )
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]] = Field(
        description="rows: true labels, columns: predicted labels, in `labels` order"
    )
    roc: RocCurve | None = Field(description="binary tasks only")
    latency: LatencySummary = Field(description="model prediction time per sample")
    predictions: list[SamplePrediction]
    evaluated_at: datetime
    seconds: float = Field(description="how long the evaluation took")


def evaluation_set_of(manifest: ModelManifest, store_root: Path | None) -> tuple[Evaluation, Path]:
    """The manifest's evaluation whose data is in the model store, the task's own preferred."""
    if store_root is None:
        raise EvaluationUnavailableError("the registry was not built from a model store folder")
    root = store_root.resolve()
    present = []
    for evaluation in manifest.evaluations:
        path = (root / evaluation.dataset).resolve()
        # Data outside the store (the training machine's) is not there to evaluate on.
        if path.is_relative_to(root) and path.exists():
            present.append((evaluation, path))
    if not present:
        named = ", ".join(e.dataset for e in manifest.evaluations) or "none"
        raise EvaluationUnavailableError(
            f"{manifest.ref} has no evaluation set in the model store "
            f"(task {manifest.task!r}; evaluation data named by its manifest: {named})"
        )
    task_folder = f"_evaluation/{manifest.task}"
    own = [pair for pair in present if pair[0].dataset.startswith(task_folder)]
    return (own or present)[0]


def predict_each(
    runtime: ModelRuntime, samples: Sequence[EvaluationSample]
) -> tuple[list[Prediction], list[float]]:
    """Predict one sample per call, as requests arrive, timing each call."""
    predictions, seconds = [], []
    for sample in samples:
        started = time.perf_counter()
        predictions.append(runtime.predict([sample.instance])[0])
        seconds.append(time.perf_counter() - started)
    return predictions, seconds


def evaluate_runtime(
    runtime: ModelRuntime, evaluation: Evaluation, path: Path, max_audio_seconds: float
) -> ModelEvaluation:
    """Run ``runtime`` on the evaluation set and measure it (blocking: call from a thread)."""
    started = time.perf_counter()
    manifest = runtime.manifest
    samples = load_samples(manifest, path, max_audio_seconds)
    try:
        predictions, seconds = predict_each(runtime, samples)
    except Exception as error:  # whatever the framework raises, the model failed
        raise EvaluationFailedError(
            f"{manifest.ref} failed on the evaluation set: {describe_error(error)}"
        ) from error
    labels = manifest.output.labels
    positive = _positive_label(manifest)
    report = classification_report(
        [s.true_label for s in samples],
        [p.label for p in predictions],
        labels,
        positive_label=positive,
        positive_scores=[p.probabilities[positive] for p in predictions] if positive else None,
    )
    result = ModelEvaluation(
        model=manifest.name,
        version=manifest.version,
        task=manifest.task,
        runtime=runtime.framework,
        dataset=evaluation.dataset,
        dataset_description=evaluation.description,
        samples=len(samples),
        labels=labels,
        positive_label=positive,
        decision_threshold=manifest.output.decision_threshold,
        metrics=report.metrics,
        recorded_metrics=evaluation.metrics,
        per_class=report.per_class,
        confusion_matrix=report.confusion_matrix,
        roc=report.roc,
        latency=latency_summary(seconds),
        predictions=[
            SamplePrediction(
                id=s.sample_id,
                true_label=s.true_label,
                predicted_label=p.label,
                probabilities=p.probabilities,
            )
            for s, p in zip(samples, predictions, strict=True)
        ],
        evaluated_at=datetime.now(UTC),
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "Evaluated %s on %s in %.2f s: %s",
        manifest.ref,
        evaluation.dataset,
        result.seconds,
        report.metrics,
    )
    return result


def _positive_label(manifest: ModelManifest) -> str | None:
    """The label a binary task's ROC curve is drawn for; None for more than two labels."""
    labels = manifest.output.labels
    if len(labels) != 2:
        return None
    return manifest.output.positive_label or labels[1]


_CacheKey = tuple[str, str, Path]


class ModelEvaluator:
    """Evaluations computed on first request, kept per model version and evaluation data."""

    def __init__(self, max_audio_seconds: float) -> None:
        self.max_audio_seconds = max_audio_seconds
        self._results: dict[_CacheKey, ModelEvaluation] = {}
        self._locks: dict[_CacheKey, asyncio.Lock] = {}

    async def evaluate(self, registry: ModelRegistry, ref: str) -> ModelEvaluation:
        """The evaluation of ``ref``; concurrent first requests share one computation.

        Raises ``ModelNotFoundError`` (unknown model), ``EvaluationUnavailableError`` (no
        evaluation set) and ``EvaluationFailedError`` (the model cannot load or predict).
        """
        entry = registry.resolve(ref)
        evaluation, path = evaluation_set_of(entry.manifest, registry.root)
        # The artifact hash is in the key: a rescanned store may bring new weights.
        key = (entry.ref, entry.manifest.sha256, path)
        cached = self._results.get(key)
        if cached is not None:
            return cached
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._results.get(key)
            if cached is None:
                cached = self._results[key] = await self._compute(registry, entry, evaluation, path)
            return cached

    async def _compute(
        self, registry: ModelRegistry, entry: ModelEntry, evaluation: Evaluation, path: Path
    ) -> ModelEvaluation:
        async with registry.serving(entry) as serving:
            if serving.is_fallback or serving.runtime is None:
                # A fallback's numbers under this model's name would mislead the comparison.
                raise EvaluationFailedError(
                    f"{entry.ref} cannot be evaluated: {serving.fallback_reason}"
                )
            return await asyncio.to_thread(
                evaluate_runtime, serving.runtime, evaluation, path, self.max_audio_seconds
            )
