"""Held-out metrics of a packaged model on its sample, as the bundled models' manifests have them.

Computed with ``ml.evaluation``, the definitions the API's evaluation route and the dashboard
use, on the predictions of the runtime that will serve (not of the pickle it came from).
"""

from __future__ import annotations

from collections.abc import Sequence

from ml.evaluation import classification_report
from ml.manifest import Evaluation, OutputSchema
from ml.packaging.errors import PackagingError
from ml.runtime import Prediction

# The headline metrics of the bundled manifests: the attrition models' for a binary task,
# the instrument models' for more classes.
BINARY_METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")
MULTICLASS_METRICS = ("accuracy", "macro_f1")


def heldout_evaluation(
    predictions: Sequence[Prediction],
    true_labels: Sequence[str],
    output: OutputSchema,
    dataset: str,
    description: str,
) -> Evaluation:
    """The evaluation entry of the manifest; ``PackagingError`` for labels the model lacks."""
    positive = output.positive_label
    try:
        report = classification_report(
            true_labels,
            [prediction.label for prediction in predictions],
            output.labels,
            positive_label=positive,
            positive_scores=(
                [prediction.probabilities[positive] for prediction in predictions]
                if positive is not None
                else None
            ),
        )
    except ValueError as error:
        raise PackagingError(
            f"the target column does not hold the model's labels {output.labels}: {error}"
        ) from error
    wanted = BINARY_METRICS if positive is not None else MULTICLASS_METRICS
    return Evaluation(
        dataset=dataset,
        description=description,
        samples=len(true_labels),
        metrics={name: report.metrics[name] for name in wanted if name in report.metrics},
        per_class={
            label: {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1}
            for label, scores in report.per_class.items()
        },
        confusion_matrix=report.confusion_matrix,
    )
