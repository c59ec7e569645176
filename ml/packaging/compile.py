"""What the compilers share: the refusal of a pipeline that a compiled form cannot reproduce
exactly (the two-step ``Pipeline``, its ``ColumnTransformer``'s blocks and categories, as both
read them), the tolerance of the proof that it does, and the file a compiled form is stored in.

The JSON readers are serving's (``ml.compiled_form``); everything here runs at packaging only.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from ml.manifest import TabularInput

logger = logging.getLogger(__name__)

# A compiled form must reproduce predict_proba to rounding error, not approximately:
# packaging proves it on every held-out row with these tolerances before writing the form.
FASTPATH_RTOL = 1e-9
FASTPATH_ATOL = 1e-12

Scorer = TypeVar("Scorer")
Classifier = TypeVar("Classifier")


class CompiledScorer(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def compiled_text(scorer: CompiledScorer) -> str:
    """The file a compiled form is stored in: sorted keys, no spaces, so it is reproducible."""
    return json.dumps(scorer.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"


class UnsupportedPipeline(Exception):
    """The pipeline is not exactly the shape a compiled form can reproduce."""


def require_features(columns: list[str], features: Mapping[str, object], kind: type) -> None:
    """Every column must be a feature of ``kind`` in the model's input schema."""
    for column in columns:
        if not isinstance(features.get(column), kind):
            raise UnsupportedPipeline(f"column {column!r} is not a {kind.__name__} of the schema")


First = TypeVar("First")
Second = TypeVar("Second")


def two_steps(pipeline: object, first: type[First], second: type[Second]) -> tuple[First, Second]:
    """The steps of a two-step ``Pipeline``, each of exactly its type (no subclasses)."""
    if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
        raise UnsupportedPipeline("not a two-step Pipeline")
    one, two = (step for _, step in pipeline.steps)
    if type(one) is not first or type(two) is not second:
        raise UnsupportedPipeline(
            f"steps are {type(one).__name__} and {type(two).__name__}, "
            f"not {first.__name__} and {second.__name__}"
        )
    return one, two


def two_step_pipeline(
    pipeline: object,
    classifier_type: type[Classifier],
    *,
    is_fitted: Callable[[Classifier], bool],
) -> tuple[ColumnTransformer, Classifier]:
    """The fitted ``ColumnTransformer`` and classifier of a two-step ``Pipeline``.

    Both of exactly their type (no subclasses); the transformers unweighted. ``is_fitted`` says
    whether the classifier is fitted: what a fitted one has differs from one type to another.
    """
    preprocess, classifier = two_steps(pipeline, ColumnTransformer, classifier_type)
    if not hasattr(preprocess, "transformers_") or not is_fitted(classifier):
        raise UnsupportedPipeline("the pipeline is not fitted")
    if preprocess.transformer_weights is not None:
        raise UnsupportedPipeline("the ColumnTransformer weights its transformers")
    return preprocess, classifier


def output_blocks(preprocess: ColumnTransformer) -> list[tuple[str, Any, list[str], slice]]:
    """The transformers whose output reaches the classifier, in ``transformers_`` order.

    Each as its name, the transformer (an estimator, or a string such as ``"passthrough"``),
    the input columns it reads (by name only) and its block of the output columns.
    """
    blocks = []
    for name, transformer, columns in preprocess.transformers_:
        block = preprocess.output_indices_[name]
        if block.stop == block.start or (isinstance(transformer, str) and transformer == "drop"):
            continue  # dropped columns (the remainder included) do not reach the model
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise UnsupportedPipeline(f"transformer {name!r} selects columns by position or mask")
        blocks.append((name, transformer, columns, block))
    return blocks


def require_string_categories(column: str, categories: Iterable[object]) -> None:
    """An encoder's categories of ``column`` must all be strings, as the schema's are."""
    if not all(isinstance(category, str) for category in categories):
        raise UnsupportedPipeline(f"column {column!r} has non-string categories")


def compile_or_none(
    compile_pipeline: Callable[[object, TabularInput], Scorer],
    pipeline: object,
    schema: TabularInput,
    form: str,
) -> Scorer | None:
    """``compile_pipeline``'s scorer, or ``None`` (logged) when the pipeline's shape differs."""
    try:
        return compile_pipeline(pipeline, schema)
    except UnsupportedPipeline as unsupported:
        logger.info("No %s fast path: %s", form, unsupported)
        return None


def is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
