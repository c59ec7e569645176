"""Evaluation of the instrument models: per-class figures and confusion matrices."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from ml.manifest import Evaluation, ModelManifest

logger = logging.getLogger(__name__)

MAX_AUDIO_SECONDS = 60.0


def evaluate(
    predicted: np.ndarray,
    targets: np.ndarray,
    labels: Sequence[str],
    dataset: str,
    description: str,
) -> Evaluation:
    """Accuracy and macro F1, per class precision, recall (the class accuracy) and F1."""
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, predicted, labels=classes, zero_division=0
    )
    per_class = {
        label: {
            "accuracy": round(float(recall[i]), 4),
            "precision": round(float(precision[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": float(support[i]),
        }
        for i, label in enumerate(labels)
    }
    metrics = {
        "accuracy": round(float(accuracy_score(targets, predicted)), 4),
        "macro_f1": round(
            float(f1_score(targets, predicted, labels=classes, average="macro", zero_division=0)), 4
        ),
    }
    matrix = confusion_matrix(targets, predicted, labels=classes).tolist()
    logger.info("%s: accuracy %.4f", dataset, metrics["accuracy"])
    return Evaluation(
        dataset=dataset,
        description=description,
        samples=len(targets),
        metrics=metrics,
        per_class=per_class,
        confusion_matrix=matrix,
    )


def evaluate_committed_set(
    manifest: ModelManifest, model_dir: Path, eval_dir: Path, dataset: str
) -> Evaluation:
    """Read the committed set as the API's evaluation route does, predict with the runtime."""
    from ml.evaluation_data import load_samples
    from ml.runtime import runtime_class

    runtime = runtime_class(manifest.framework)(manifest, model_dir, "cpu")
    runtime.load()
    samples = load_samples(manifest, eval_dir, MAX_AUDIO_SECONDS)
    labels = list(manifest.output.labels)
    predictions = runtime.predict([sample.instance for sample in samples])
    predicted = np.array([labels.index(p.label) for p in predictions])
    targets = np.array([labels.index(sample.true_label) for sample in samples])
    runtime.unload()
    return evaluate(
        predicted,
        targets,
        labels,
        dataset,
        "committed sample (FLAC clips from MuseScore Lite), through decode_audio "
        "and the serving runtime",
    )
