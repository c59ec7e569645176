"""Compile a fitted ``StandardScaler`` + ``OneHotEncoder`` -> ``LogisticRegression`` pipeline
into its exact pure-Python form, :class:`ml.linear_fastpath.LinearScorer`.

The scaler is folded into the coefficients (``coef_j / scale_j`` and ``-weight * mean_j``),
the one-hot block becomes ``{category: coef}`` per column. Only public fitted attributes are
read (``transformers_``, ``output_indices_``, ``coef_``, ``mean_``, ``scale_``,
``categories_``). Anything that deviates from this shape is refused (``None``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.linear_fastpath import LinearScorer
from ml.manifest import CategoricalFeature, NumericFeature, TabularInput
from ml.packaging.compile import (
    UnsupportedPipeline,
    compile_or_none,
    output_blocks,
    require_features,
    require_string_categories,
    two_step_pipeline,
)


def compile_linear_pipeline(pipeline: object, schema: TabularInput) -> LinearScorer | None:
    """Compile ``pipeline`` into a :class:`LinearScorer`, or ``None`` if its shape differs.

    Exact types are required (no subclasses), so nothing can override the arithmetic.
    """
    return compile_or_none(_compile, pipeline, schema, "linear")


def _compile(pipeline: object, schema: TabularInput) -> LinearScorer:
    preprocess, classifier = two_step_pipeline(
        pipeline, LogisticRegression, is_fitted=lambda model: hasattr(model, "coef_")
    )
    coef, intercept, classes = _binary_logistic_parameters(classifier)
    features = {feature.name: feature for feature in schema.features}
    numeric_weights: list[tuple[str, float, float]] = []
    category_weights: list[tuple[str, Mapping[str, float]]] = []
    used_width = 0
    for name, transformer, columns, block in output_blocks(preprocess):
        block_coef = coef[block]
        used_width += len(block_coef)
        if type(transformer) is StandardScaler:
            require_features(columns, features, NumericFeature)
            numeric_weights.extend(_fold_scaler(transformer, columns, block_coef))
        elif type(transformer) is OneHotEncoder:
            require_features(columns, features, CategoricalFeature)
            category_weights.extend(_one_hot_weights(transformer, columns, block_coef))
        elif isinstance(transformer, str):
            raise UnsupportedPipeline(f"transformer {name!r} passes columns through unscaled")
        else:
            raise UnsupportedPipeline(f"transformer {name!r} is a {type(transformer).__name__}")
    if used_width != len(coef):
        raise UnsupportedPipeline(
            f"the transformers give {used_width} columns, the model {len(coef)}"
        )
    return LinearScorer(
        negative_class=classes[0],
        positive_class=classes[1],
        intercept=intercept,
        numeric_weights=tuple(numeric_weights),
        category_weights=tuple(category_weights),
    )


def _binary_logistic_parameters(
    classifier: LogisticRegression,
) -> tuple[np.ndarray, float, tuple[str, str]]:
    classes = tuple(classifier.classes_)
    if len(classes) != 2 or classifier.coef_.shape[0] != 1:
        raise UnsupportedPipeline(f"the classifier has {len(classes)} classes, not 2")
    if classifier.coef_.dtype != np.float64:
        raise UnsupportedPipeline(f"coefficients are {classifier.coef_.dtype}, not float64")
    negative, positive = (str(label) for label in classes)
    return classifier.coef_[0], float(classifier.intercept_[0]), (negative, positive)


def _fold_scaler(
    scaler: StandardScaler,
    columns: list[str],
    coef: np.ndarray,
) -> list[tuple[str, float, float]]:
    """Per feature ``coef / scale`` and its share of the offset, ``-coef * mean / scale``."""
    if not (scaler.with_mean and scaler.with_std):
        raise UnsupportedPipeline("the StandardScaler does not both centre and scale")
    if len(coef) != len(columns):
        raise UnsupportedPipeline("the StandardScaler's width does not match its columns")
    weights = [float(c) / float(s) for c, s in zip(coef, scaler.scale_, strict=True)]
    offsets = [-(w * float(m)) for w, m in zip(weights, scaler.mean_, strict=True)]
    return list(zip(columns, weights, offsets, strict=True))


def _one_hot_weights(
    encoder: OneHotEncoder,
    columns: list[str],
    coef: np.ndarray,
) -> list[tuple[str, Mapping[str, float]]]:
    """``{category: coef}`` per column, in the encoder's output order."""
    if encoder.handle_unknown != "ignore" or encoder.drop is not None:
        raise UnsupportedPipeline("the OneHotEncoder must ignore unknown categories and drop none")
    if encoder.min_frequency is not None or encoder.max_categories is not None:
        raise UnsupportedPipeline("the OneHotEncoder groups infrequent categories")
    if np.dtype(encoder.dtype) != np.float64:
        raise UnsupportedPipeline(f"the OneHotEncoder outputs {encoder.dtype}, not float64")
    weights: list[tuple[str, Mapping[str, float]]] = []
    start = 0
    for column, categories in zip(columns, encoder.categories_, strict=True):
        require_string_categories(column, categories)
        block = coef[start : start + len(categories)]
        weights.append((column, {str(c): float(w) for c, w in zip(categories, block, strict=True)}))
        start += len(categories)
    if start != len(coef):
        raise UnsupportedPipeline("the OneHotEncoder's width does not match its categories")
    return weights
