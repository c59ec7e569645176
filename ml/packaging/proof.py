"""Proving that a runtime serves what the fitted estimator answers, on the sample's rows.

The runtime is the one the server will run, loaded from the files about to be written, and
given the rows as requests send them; the reference is the estimator's ``predict_proba`` on
the sample itself, and the label its likeliest class (ties to the first, as ``argmax``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.runtime import ModelRuntime, Prediction


@dataclass(frozen=True)
class Proof:
    rows: int
    max_probability_difference: float
    same_labels: bool
    holds: bool
    """Same labels, and every probability within the tolerances asked for."""
    predictions: list[Prediction]

    def describe(self) -> str:
        return (
            f"on {self.rows} sample rows: max probability difference "
            f"{self.max_probability_difference:.2g}, "
            f"{'same labels' if self.same_labels else 'DIFFERENT labels'}"
        )


def prove(
    runtime: ModelRuntime,
    rows: Sequence[dict[str, object]],
    expected: np.ndarray,
    classes: Sequence[str],
    *,
    atol: float,
    rtol: float = 0.0,
) -> Proof:
    """Compare ``runtime`` on ``rows`` with ``expected`` (``predict_proba``, ``classes`` order)."""
    predictions = runtime.predict(rows)
    actual = np.array([[p.probabilities[label] for label in classes] for p in predictions])
    expected_labels = [classes[index] for index in np.argmax(expected, axis=1)]
    same_labels = [p.label for p in predictions] == expected_labels
    return Proof(
        rows=len(rows),
        max_probability_difference=float(np.max(np.abs(actual - expected))),
        same_labels=same_labels,
        holds=same_labels and bool(np.allclose(actual, expected, rtol=rtol, atol=atol)),
        predictions=predictions,
    )
