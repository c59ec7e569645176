"""Classification metrics of a model on a labelled evaluation set, in plain numpy.

Plain numpy rather than scikit-learn: the API evaluates models under ``ENV=test`` as well,
where no ML framework is imported. The definitions are scikit-learn's (precision of a class
never predicted is 0, ROC AUC counts tied scores as half), so the numbers reproduce the
manifests' held-out metrics, which training computed with scikit-learn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClassScores:
    """Precision, recall and F1 of one label, and how many samples truly have it."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class RocCurve:
    """ROC points, from (0, 0) to (1, 1), one per distinct score.

    ``thresholds[i]`` is the lowest positive-label probability called positive at point ``i``;
    the first point, where nothing is called positive, has ``None``.
    """

    false_positive_rate: list[float]
    true_positive_rate: list[float]
    thresholds: list[float | None]
    auc: float | None
    """None when the set holds a single class: the curve is then undefined."""


@dataclass(frozen=True, slots=True)
class ClassificationReport:
    labels: list[str]
    metrics: dict[str, float]
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]
    """Rows are true labels, columns predicted labels, both in ``labels`` order."""
    roc: RocCurve | None
    """For binary tasks only."""


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Per-sample prediction time, in milliseconds."""

    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


def confusion_matrix(
    true_labels: Sequence[str], predicted_labels: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    """Counts of (true, predicted) pairs; a label outside ``labels`` is a ``ValueError``."""
    index = {label: position for position, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true, predicted in zip(true_labels, predicted_labels, strict=True):
        try:
            matrix[index[true], index[predicted]] += 1
        except KeyError as error:
            raise ValueError(f"label {error.args[0]!r} is not one of {list(labels)}") from None
    return matrix


def per_class_scores(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, ClassScores]:
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = _safe_ratio(true_positives, predicted)
    recall = _safe_ratio(true_positives, support)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    return {
        label: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        for i, label in enumerate(labels)
    }


def roc_curve(is_positive: np.ndarray, scores: np.ndarray) -> RocCurve:
    """The ROC curve of ``scores`` (higher means more likely positive) and its area."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_positive = scores[order], is_positive[order]
    # One point per distinct score: tied samples move the curve together.
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_positive)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    positives, negatives = int(is_positive.sum()), int((~is_positive).sum())
    # A class absent from the set leaves its rate at 0 (and the AUC undefined).
    tpr = np.r_[0.0, true_positives / max(positives, 1)]
    fpr = np.r_[0.0, false_positives / max(negatives, 1)]
    auc = float(np.trapezoid(tpr, fpr)) if positives and negatives else None
    thresholds: list[float | None] = [None, *sorted_scores[last_of_each_score].tolist()]
    return RocCurve(fpr.tolist(), tpr.tolist(), thresholds, auc)


def classification_report(
    true_labels: Sequence[str],
    predicted_labels: Sequence[str],
    labels: Sequence[str],
    *,
    positive_label: str | None = None,
    positive_scores: Sequence[float] | None = None,
) -> ClassificationReport:
    """Accuracy, macro and per-class scores; for a binary task also the positive class's
    precision, recall, F1 and, given its probabilities, the ROC curve and AUC."""
    if not true_labels:
        raise ValueError("cannot evaluate on an empty set")
    matrix = confusion_matrix(true_labels, predicted_labels, labels)
    per_class = per_class_scores(matrix, labels)
    metrics = {
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "macro_precision": float(np.mean([s.precision for s in per_class.values()])),
        "macro_recall": float(np.mean([s.recall for s in per_class.values()])),
        "macro_f1": float(np.mean([s.f1 for s in per_class.values()])),
    }
    roc = None
    if positive_label is not None:
        positive = per_class[positive_label]
        metrics.update(precision=positive.precision, recall=positive.recall, f1=positive.f1)
    if positive_label is not None and positive_scores is not None:
        is_positive = np.array([label == positive_label for label in true_labels])
        roc = roc_curve(is_positive, np.asarray(positive_scores, dtype=np.float64))
        if roc.auc is not None:
            metrics["roc_auc"] = roc.auc
    return ClassificationReport(list(labels), metrics, per_class, matrix.tolist(), roc)


def latency_summary(seconds: Sequence[float]) -> LatencySummary:
    if not seconds:
        raise ValueError("no latency measured")
    milliseconds = np.asarray(seconds, dtype=np.float64) * 1000
    p50, p95 = np.percentile(milliseconds, [50, 95])
    return LatencySummary(
        mean_ms=float(milliseconds.mean()),
        p50_ms=float(p50),
        p95_ms=float(p95),
        max_ms=float(milliseconds.max()),
    )


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    result = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result
