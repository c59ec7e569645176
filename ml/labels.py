"""The label of a prediction, from its probabilities, as the manifest's output says."""

from __future__ import annotations

from collections.abc import Mapping

from ml.manifest import OutputSchema


class LabelRule:
    """The positive label when its probability reaches the threshold, else the likeliest.

    Probabilities within ``tie_tolerance`` of the highest are a tie, which goes to the first
    of them in label order, as scikit-learn's ``argmax`` breaks an exact one: a runtime whose
    probabilities are float32 sums (ONNX Runtime's tree ensembles) turns scikit-learn's exact
    0.5 / 0.5 of a forest into 0.49999997 / 0.5, and must not answer the other label for it.
    """

    def __init__(self, output: OutputSchema, tie_tolerance: float = 0.0) -> None:
        self._labels = list(output.labels)
        # A threshold needs a positive label to apply to; without either, the likeliest wins.
        self._threshold: tuple[str, float] | None = (
            (output.positive_label, output.decision_threshold)
            if output.positive_label and output.decision_threshold is not None
            else None
        )
        self._other_labels = [label for label in self._labels if label != output.positive_label]
        self._tie_tolerance = tie_tolerance

    def decide(self, probabilities: Mapping[str, float]) -> str:
        candidates = self._labels
        if self._threshold is not None:
            positive_label, threshold = self._threshold
            if probabilities[positive_label] >= threshold:
                return positive_label
            candidates = self._other_labels
        if len(candidates) == 1:
            return candidates[0]
        if not self._tie_tolerance:
            return max(candidates, key=probabilities.__getitem__)  # the first of equal ones
        floor = max(probabilities[label] for label in candidates) - self._tie_tolerance
        return next(label for label in candidates if probabilities[label] >= floor)
