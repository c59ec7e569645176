"""The private scikit-learn attributes the tree compiler reads exist, as it expects them, on a
booster freshly fitted with the pinned scikit-learn version."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn._loss.loss import HalfBinomialLoss
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from ml.packaging import sklearn_internals
from ml.packaging.compile import UnsupportedPipeline
from ml.tree_fastpath import CATEGORY_CODES, Tree

ROOT = Path(__file__).resolve().parents[2]


def pinned_scikit_learn() -> str:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(r"^scikit-learn==(\S+)$", text, flags=re.MULTILINE)
    assert match is not None, "requirements.txt pins no scikit-learn"
    return match.group(1)


@pytest.fixture(scope="module")
def booster() -> HistGradientBoostingClassifier:
    """A booster with native categorical splits, as the attrition training fits one."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "color": rng.choice(["blue", "green", "red"], 300),
            "size": rng.integers(0, 100, 300),
        }
    )
    target = np.where((frame["color"] == "red") ^ (frame["size"] > 50), "yes", "no")
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        (
                            "categorical",
                            OrdinalEncoder(
                                handle_unknown="use_encoded_value", unknown_value=np.nan
                            ),
                            ["color"],
                        ),
                        ("numeric", "passthrough", ["size"]),
                    ]
                ),
            ),
            (
                "classifier",
                HistGradientBoostingClassifier(
                    categorical_features=[0], max_iter=10, random_state=0
                ),
            ),
        ]
    )
    with threadpool_limits(limits=1):
        pipeline.fit(frame, target)
    return pipeline.named_steps["classifier"]


def test_the_module_names_the_pinned_version_and_runs_under_it() -> None:
    assert sklearn_internals.PINNED_SCIKIT_LEARN == pinned_scikit_learn()
    assert f"scikit-learn {pinned_scikit_learn()}" in (sklearn_internals.__doc__ or "")
    assert sklearn.__version__ == sklearn_internals.PINNED_SCIKIT_LEARN


def test_the_private_attributes_exist_with_their_expected_types(booster: Any) -> None:
    for name in sklearn_internals.PRIVATE_ATTRIBUTES:
        assert hasattr(booster, name), name
    assert type(booster._loss) is HalfBinomialLoss
    assert booster._baseline_prediction.shape == (1, 1)
    assert booster._preprocessor is not None
    assert isinstance(booster._preprocessor.named_transformers_["encoder"], OrdinalEncoder)
    assert booster._preprocessor.output_indices_["encoder"] == slice(0, 1)
    assert list(booster._bin_mapper.is_categorical_) == [True, False]
    predictors = [p for iteration in booster._predictors for p in iteration]
    assert len(predictors) == booster.n_iter_
    assert all(type(p) is TreePredictor for p in predictors)
    for predictor in predictors:
        assert set(sklearn_internals.NODE_FIELDS) <= set(predictor.nodes.dtype.names)
        bitsets = predictor.raw_left_cat_bitsets
        assert bitsets.dtype == np.uint32 and bitsets.shape[1:] == (sklearn_internals.BITSET_WORDS,)
    known, of_feature = booster._bin_mapper.make_known_categories_bitsets()
    assert known.dtype == np.uint32 and known.shape == (1, sklearn_internals.BITSET_WORDS)
    assert list(of_feature) == [0, 0]
    assert sklearn_internals.BITSET_WORDS * sklearn_internals.BITS_PER_WORD == CATEGORY_CODES


def test_the_readers_give_plain_python_values(booster: Any) -> None:
    assert sklearn_internals.is_fitted(booster)
    assert not sklearn_internals.is_fitted(HistGradientBoostingClassifier())
    baseline = sklearn_internals.binary_log_loss_baseline(booster)
    assert type(baseline) is float and math.isfinite(baseline)
    assert sklearn_internals.has_own_encoder(booster)
    encoding = sklearn_internals.own_encoding(booster)
    # The pipeline's codes 0, 1, 2 (blue, green, red), all seen in training.
    assert encoding.categories == ((0.0, 1.0, 2.0),)
    assert encoding.known == (frozenset({0, 1, 2}),)
    trees = sklearn_internals.fitted_trees(booster)
    assert len(trees) == booster.n_iter_ and all(type(tree) is Tree for tree in trees)
    splits = [
        (feature, left)
        for tree in trees
        for feature, left in zip(tree.feature, tree.categories_left, strict=True)
        if feature is not None
    ]
    assert {feature for feature, _ in splits} == {0, 1}  # both kinds of split are read
    assert all((left is not None) == (feature == 0) for feature, left in splits)


def test_bitsets_read_bit_c_mod_32_of_word_c_div_32() -> None:
    bitset = np.zeros(sklearn_internals.BITSET_WORDS, dtype=np.uint32)
    bitset[0], bitset[7] = 0b101, 1 << 31

    assert sklearn_internals.bitset_codes(bitset) == frozenset({0, 2, 255})
    with pytest.raises(UnsupportedPipeline, match="words"):
        sklearn_internals.bitset_codes(bitset[:4])
