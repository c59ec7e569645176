"""Calibration and abstention on held-out logits (``ml.training.instruments_loso``)."""

from __future__ import annotations

import numpy as np

from ml.training.instruments_loso import (
    abstain,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
)


def test_calibration_of_overconfident_logits() -> None:
    rng = np.random.default_rng(5)
    targets = rng.integers(0, 3, 2000)
    # 70 % right, but every answer made 99 % sure: the temperature must soften it.
    right = rng.random(2000) < 0.7
    predicted = np.where(right, targets, (targets + 1) % 3)
    logits = np.full((2000, 3), -6.0)
    logits[np.arange(2000), predicted] = 6.0
    raw = expected_calibration_error(softmax(logits), targets)
    temperature = fit_temperature(logits, targets)
    calibrated = expected_calibration_error(softmax(logits, temperature), targets)
    assert raw > 0.25 and temperature > 2 and calibrated < 0.05


def test_abstention_sends_unsure_answers_to_unknown() -> None:
    probabilities = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.2, 0.5, 0.3]])
    assert abstain(probabilities, 0.45, unknown=2).tolist() == [0, 2, 1]
    assert abstain(probabilities, 0.0, unknown=2).tolist() == [0, 0, 1]
    targets = np.array([0, 2, 1])
    threshold, accuracy = choose_threshold(probabilities, targets, unknown=2)
    assert 0.4 < threshold <= 0.5 and accuracy == 1.0
