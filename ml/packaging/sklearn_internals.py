"""Every read of scikit-learn's private attributes, in one place: the tree compiler's.

Written against scikit-learn 1.9.1, the version ``requirements.txt`` pins
(:data:`PINNED_SCIKIT_LEARN`). ``tests/unit/test_sklearn_internals.py`` fits a booster with
the installed version, checks that it is the pinned one, and that every attribute read here
exists with the type and layout this module expects. Moving the pin means passing that test,
then retraining, which proves the compiled forms equal to ``predict_proba`` again.

What a fitted ``HistGradientBoostingClassifier`` keeps privately, and this module reads:

* ``_loss``, a ``sklearn._loss.loss.HalfBinomialLoss`` for binary log-loss, and
  ``_baseline_prediction`` (shape (1, 1)): the raw score before the first tree;
* ``_predictors``: per iteration, one ``TreePredictor`` per tree. Its ``nodes`` are a
  structured array of ``PREDICTOR_RECORD_DTYPE`` (``is_leaf``, ``value``, ``feature_idx``,
  ``num_threshold``, ``is_categorical``, ``bitset_idx``, ``missing_go_to_left``, ``left``,
  ``right``); its ``raw_left_cat_bitsets`` hold the left set of each categorical split;
* ``_preprocessor``: ``None``, or the booster's own ``ColumnTransformer`` whose
  ``OrdinalEncoder`` named ``"encoder"`` re-encodes the categorical columns and puts them
  first;
* ``_bin_mapper``: ``is_categorical_`` in that re-encoded order, and
  ``make_known_categories_bitsets()``, the categories seen in training.

A bitset is 8 uint32 words: category ``c`` is bit ``c % 32`` of word ``c // 32``.
Nothing else in this repository touches these names; a change of layout is refused here
(``UnsupportedPipeline``) rather than compiled wrongly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sklearn._loss.loss import HalfBinomialLoss

from ml.packaging.compile import UnsupportedPipeline, is_nan
from ml.tree_fastpath import Tree

PINNED_SCIKIT_LEARN = "1.9.1"
PRIVATE_ATTRIBUTES = (
    "_loss",
    "_baseline_prediction",
    "_predictors",
    "_preprocessor",
    "_bin_mapper",
)
"""The booster's private attributes this module reads."""
NODE_FIELDS = (
    "is_leaf",
    "value",
    "feature_idx",
    "num_threshold",
    "is_categorical",
    "bitset_idx",
    "missing_go_to_left",
    "left",
    "right",
)
"""The fields of a ``TreePredictor``'s nodes this module reads."""
BITSET_WORDS, BITS_PER_WORD = 8, 32
"""8 x 32 bits: the serving form's ``CATEGORY_CODES`` codes."""


def is_fitted(booster: Any) -> bool:
    return hasattr(booster, "_predictors")


def binary_log_loss_baseline(booster: Any) -> float:
    """The raw score before the first tree; ``UnsupportedPipeline`` unless binary log-loss."""
    if type(booster._loss) is not HalfBinomialLoss or booster._baseline_prediction.shape != (1, 1):
        raise UnsupportedPipeline(f"the booster's loss is {type(booster._loss).__name__}")
    return float(booster._baseline_prediction[0, 0])


def has_own_encoder(booster: Any) -> bool:
    """Whether the booster re-encodes categorical columns (``categorical_features`` set)."""
    return booster._preprocessor is not None


@dataclass(frozen=True, slots=True)
class OwnEncoding:
    """How the booster re-encodes its categorical columns, in their order (they come first)."""

    categories: tuple[tuple[float, ...], ...]
    """Per column, the codes of the pipeline's encoder that the booster's encoder saw: the
    booster's code of a category is its position here (NaN, for missing, is no category)."""
    known: tuple[frozenset[int], ...]
    """Per column, the booster's codes of the categories seen in training."""


def own_encoding(booster: Any) -> OwnEncoding:
    """The booster's own encoding; ``UnsupportedPipeline`` if it is not the one known here."""
    inner = booster._preprocessor
    mask = [bool(m) for m in booster.is_categorical_]
    encoder = inner.named_transformers_["encoder"]
    n_categorical = sum(mask)
    if (
        inner.output_indices_["encoder"] != slice(0, n_categorical)
        or not is_nan(encoder.unknown_value)
        or list(booster._bin_mapper.is_categorical_) != sorted(mask, reverse=True)
    ):
        raise UnsupportedPipeline("the booster's own encoding is not the one this module knows")
    known_bitsets, bitset_of_feature = booster._bin_mapper.make_known_categories_bitsets()
    return OwnEncoding(
        categories=tuple(tuple(float(code) for code in codes) for codes in encoder.categories_),
        known=tuple(
            bitset_codes(known_bitsets[bitset_of_feature[feature]])
            for feature in range(len(encoder.categories_))
        ),
    )


def fitted_trees(booster: Any) -> tuple[Tree, ...]:
    """Every tree of the booster, in the order ``_raw_predict`` sums them."""
    return tuple(
        _tree(predictor)
        for predictors_of_iteration in booster._predictors
        for predictor in predictors_of_iteration
    )


def _tree(predictor: Any) -> Tree:
    arrays: dict[str, list[Any]] = {key: [] for key in Tree.__dataclass_fields__}
    for node in predictor.nodes:
        leaf = bool(node["is_leaf"])
        categorical = not leaf and bool(node["is_categorical"])
        arrays["feature"].append(None if leaf else int(node["feature_idx"]))
        arrays["threshold"].append(None if leaf or categorical else float(node["num_threshold"]))
        arrays["categories_left"].append(
            bitset_codes(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
            if categorical
            else None
        )
        arrays["missing_left"].append(None if leaf else bool(node["missing_go_to_left"]))
        arrays["left"].append(None if leaf else int(node["left"]))
        arrays["right"].append(None if leaf else int(node["right"]))
        arrays["value"].append(float(node["value"]) if leaf else None)
    return Tree(**{key: tuple(values) for key, values in arrays.items()})


def bitset_codes(bitset: Sequence[Any]) -> frozenset[int]:
    """The members of a scikit-learn bitset: 8 uint32 words, ``c`` is bit c % 32 of word c // 32."""
    if len(bitset) != BITSET_WORDS:
        raise UnsupportedPipeline(f"a bitset has {len(bitset)} words")
    return frozenset(
        word_index * BITS_PER_WORD + bit
        for word_index, word in enumerate(int(w) for w in bitset)
        for bit in range(BITS_PER_WORD)
        if word >> bit & 1
    )
