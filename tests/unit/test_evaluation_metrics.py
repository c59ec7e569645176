"""ml.evaluation's plain-numpy metrics against scikit-learn, the reference of the manifests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from ml.evaluation import classification_report, confusion_matrix, latency_summary, roc_curve

LABELS = ["No", "Yes"]


@pytest.fixture
def binary_case() -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(7)
    truth = rng.choice(LABELS, size=300, p=[0.8, 0.2])
    # Rounded scores: many ties, which is where ROC implementations differ.
    scores = np.round(np.clip(0.3 * (truth == "Yes") + rng.normal(0.35, 0.2, 300), 0, 1), 1)
    predicted = np.where(scores >= 0.5, "Yes", "No")
    return truth.tolist(), predicted.tolist(), scores


def test_binary_report_matches_scikit_learn(
    binary_case: tuple[list[str], list[str], np.ndarray],
) -> None:
    truth, predicted, scores = binary_case

    report = classification_report(
        truth, predicted, LABELS, positive_label="Yes", positive_scores=scores.tolist()
    )

    assert report.confusion_matrix == sk.confusion_matrix(truth, predicted, labels=LABELS).tolist()
    assert report.metrics["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted))
    assert report.metrics["f1"] == pytest.approx(sk.f1_score(truth, predicted, pos_label="Yes"))
    assert report.metrics["macro_f1"] == pytest.approx(
        sk.f1_score(truth, predicted, average="macro")
    )
    assert report.metrics["roc_auc"] == pytest.approx(
        sk.roc_auc_score(np.array(truth) == "Yes", scores), abs=1e-12
    )
    assert report.per_class["No"].recall == pytest.approx(
        sk.recall_score(truth, predicted, pos_label="No")
    )


def test_roc_points_are_scikit_learns_without_dropping_any(
    binary_case: tuple[list[str], list[str], np.ndarray],
) -> None:
    truth, _, scores = binary_case
    is_positive = np.array(truth) == "Yes"

    roc = roc_curve(is_positive, scores)
    fpr, tpr, thresholds = sk.roc_curve(is_positive, scores, drop_intermediate=False)

    np.testing.assert_allclose(roc.false_positive_rate, fpr)
    np.testing.assert_allclose(roc.true_positive_rate, tpr)
    assert roc.thresholds[0] is None
    np.testing.assert_allclose(roc.thresholds[1:], thresholds[1:])


def test_a_class_never_predicted_has_zero_precision_not_nan() -> None:
    report = classification_report(["a", "b", "c"], ["a", "a", "b"], ["a", "b", "c"])

    assert report.per_class["c"].precision == 0.0 and report.per_class["c"].f1 == 0.0
    assert report.metrics["accuracy"] == pytest.approx(1 / 3)
    assert report.roc is None and "roc_auc" not in report.metrics


def test_auc_is_undefined_when_the_set_has_one_class() -> None:
    roc = roc_curve(np.array([True, True]), np.array([0.2, 0.9]))

    assert roc.auc is None
    assert roc.true_positive_rate == [0.0, 0.5, 1.0] and roc.false_positive_rate == [0.0] * 3


def test_unknown_labels_and_empty_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        confusion_matrix(["No"], ["maybe"], LABELS)
    with pytest.raises(ValueError, match="empty"):
        classification_report([], [], LABELS)
    with pytest.raises(ValueError, match="no latency"):
        latency_summary([])


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.001] * 19 + [0.1])

    assert summary.p50_ms == pytest.approx(1.0)
    assert summary.max_ms == pytest.approx(100.0)
    assert summary.p50_ms <= summary.p95_ms <= summary.max_ms
