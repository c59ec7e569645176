"""Evaluation of the instrument models: per-class figures and confusion matrices."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support)

from ml.manifest import Evaluation, ModelManifest

logger = logging.getLogger(__name__)

MAX_AUDIO_SECONDS = 60.0


def evaluate(predicted: np.ndarray, targets: np.ndarray, labels: Sequence[str], dataset: str,
             description: str) -> Evaluation:
    """Accuracy and macro F1, per class precision, recall (the class accuracy) and F1."""
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, predicted, labels=classes, zero_division=0)
    per_class = {
        label: {"accuracy": round(float(recall[i]), 4), "precision": round(float(precision[i]), 4),
                "f1": round(float(f1[i]), 4), "support": float(support[i])}
        for i, label in enumerate(labels)
    }
    metrics = {
        "accuracy": round(float(accuracy_score(targets, predicted)), 4),
        "macro_f1": round(float(f1_score(targets, predicted, labels=classes, average="macro",
                                         zero_division=0)), 4),
    }
    matrix = confusion_matrix(targets, predicted, labels=classes).tolist()
    logger.info("%s: accuracy %.4f", dataset, metrics["accuracy"])
    return Evaluation(dataset=dataset, description=description, samples=len(targets),
                      metrics=metrics, per_class=per_class, confusion_matrix=matrix)


def evaluate_committed_set(manifest: ModelManifest, model_dir: Path, eval_dir: Path,
                           dataset: str) -> Evaluation:
    """Decode the committed files and predict them with the model's own serving runtime."""
    from ml.audio import decode_audio
    from ml.runtime import runtime_class

    runtime = runtime_class(manifest.framework)(manifest, model_dir, "cpu")
    runtime.load()
    with (eval_dir / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    clips = [decode_audio((eval_dir / row["file"]).read_bytes(), MAX_AUDIO_SECONDS)
             for row in rows]
    labels = list(manifest.output.labels)
    predicted = np.array([labels.index(p.label) for p in runtime.predict(clips)])
    targets = np.array([labels.index(row["label"]) for row in rows])
    runtime.unload()
    return evaluate(predicted, targets, labels, dataset,
                    "committed sample of the other soundfont (FLAC), through decode_audio "
                    "and the serving runtime")
