"""The comparison candidate: a scikit-learn classifier on MFCC statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ml.features import mfcc_statistics_from_power
from ml.training.instruments_augment import augment_power
from ml.training.instruments_data import ClipSet

if TYPE_CHECKING:
    from ml.training.config import TrainConfig

logger = logging.getLogger(__name__)

CLASSIFIER_C = 1.0


def train_mfcc(
    clips: ClipSet, labels: Sequence[str], config: TrainConfig
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on the clean clips plus augmented copies (the same augmentation as the CNN's)."""
    rng = np.random.default_rng(config.seed)
    powers = [clips.power] + [
        augment_power(clips.power, rng, config.augment) for _ in range(config.mfcc_copies)
    ]
    inputs = np.concatenate([mfcc_statistics_from_power(p, config.features) for p in powers])
    # String classes, so that the runtime can match predict_proba's columns to the labels.
    targets = np.asarray(labels)[np.tile(clips.targets, len(powers))]
    classifier = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=CLASSIFIER_C, max_iter=2000, class_weight="balanced"),
    )
    classifier.fit(inputs, targets)
    logger.info("MFCC classifier: %d rows, %d features", len(inputs), inputs.shape[1])
    parameters = {
        "classifier": "StandardScaler + LogisticRegression",
        "C": CLASSIFIER_C,
        "class_weight": "balanced",
        "augmented_copies": config.mfcc_copies,
        "features": int(inputs.shape[1]),
        "seed": config.seed,
    }
    return classifier, parameters


def mfcc_inputs(clips: ClipSet, config: TrainConfig) -> np.ndarray:
    """The classifier's input rows of the (un-augmented) clips."""
    return mfcc_statistics_from_power(clips.power, config.features)


def predict_mfcc(classifier: Pipeline, inputs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Predicted class index of each row of ``mfcc_inputs``."""
    predicted = classifier.predict(inputs)
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[str(label)] for label in predicted], dtype=np.int64)
