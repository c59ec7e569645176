"""Compile a fitted ``ColumnTransformer`` -> ``HistGradientBoostingClassifier`` pipeline into
its exact pure-Python form, :class:`ml.tree_fastpath.TreeEnsembleScorer`.

The pipeline's ``OrdinalEncoder`` (unknown categories as NaN) and numbers passed through are
read from public fitted attributes; the booster's trees, baseline and own re-encoding of the
categories only from ``ml.packaging.sklearn_internals``, the one module that reads
scikit-learn's private attributes. Anything unexpected is refused (``None``).
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

from ml.manifest import CategoricalFeature, NumericFeature, TabularInput
from ml.packaging import sklearn_internals
from ml.packaging.compile import (
    UnsupportedPipeline,
    compile_or_none,
    is_nan,
    output_blocks,
    require_features,
    require_string_categories,
    two_step_pipeline,
)
from ml.tree_fastpath import Tree, TreeEnsembleScorer, TreeInput


def compile_tree_pipeline(pipeline: object, schema: TabularInput) -> TreeEnsembleScorer | None:
    """Compile ``pipeline`` into a :class:`TreeEnsembleScorer`, or ``None`` if its shape differs.

    Exact types are required (no subclasses), so nothing can override the arithmetic.
    """
    return compile_or_none(_compile, pipeline, schema, "tree")


def _compile(pipeline: object, schema: TabularInput) -> TreeEnsembleScorer:
    preprocess, booster = two_step_pipeline(
        pipeline, HistGradientBoostingClassifier, is_fitted=sklearn_internals.is_fitted
    )
    classes = [str(label) for label in booster.classes_]
    if len(classes) != 2 or booster.n_trees_per_iteration_ != 1:
        raise UnsupportedPipeline(f"the booster has {len(classes)} classes, not 2")
    baseline = sklearn_internals.binary_log_loss_baseline(booster)
    columns = _pipeline_columns(preprocess, schema)
    if len(columns) != booster.n_features_in_:
        raise UnsupportedPipeline(
            f"the pipeline gives {len(columns)} columns, the booster reads {booster.n_features_in_}"
        )
    inputs = _tree_inputs(booster, columns)
    trees = sklearn_internals.fitted_trees(booster)
    for tree in trees:
        _check_split_kinds(tree, inputs)
    return TreeEnsembleScorer(
        negative_class=classes[0],
        positive_class=classes[1],
        baseline=baseline,
        inputs=inputs,
        trees=trees,
    )


# One column of the booster's input: the schema feature, and for an ordinal-encoded
# category, ``{category: float code}`` (None for a number passed through).
_Column = tuple[str, dict[str, float] | None]


def _pipeline_columns(preprocess: Any, schema: TabularInput) -> list[_Column]:
    """The ``ColumnTransformer``'s output columns, in order, as functions of the row."""
    if preprocess.sparse_output_:
        raise UnsupportedPipeline("the ColumnTransformer's output is sparse")
    features = {feature.name: feature for feature in schema.features}
    blocks = []
    for name, transformer, selected, block in output_blocks(preprocess):
        if type(transformer) is OrdinalEncoder:
            require_features(selected, features, CategoricalFeature)
            columns = _ordinal_columns(transformer, selected)
        elif (isinstance(transformer, str) and transformer == "passthrough") or (
            type(transformer) is FunctionTransformer
            and transformer.func is None
            and transformer.inverse_func is None
        ):
            require_features(selected, features, NumericFeature)
            columns = [(column, None) for column in selected]
        else:
            raise UnsupportedPipeline(f"transformer {name!r} is a {type(transformer).__name__}")
        if len(columns) != block.stop - block.start:
            raise UnsupportedPipeline(f"transformer {name!r} gives an unexpected width")
        blocks.append((block.start, columns))
    return [column for _, columns in sorted(blocks) for column in columns]


def _ordinal_columns(encoder: Any, selected: list[str]) -> list[_Column]:
    """``{category: code}`` per column; unknown categories must become NaN (missing)."""
    if (
        encoder.handle_unknown != "use_encoded_value"
        or not is_nan(encoder.unknown_value)
        or encoder.min_frequency is not None
        or encoder.max_categories is not None
    ):
        raise UnsupportedPipeline(
            "the OrdinalEncoder must encode unknown categories as NaN and group none"
        )
    columns: list[_Column] = []
    for column, categories in zip(selected, encoder.categories_, strict=True):
        require_string_categories(column, categories)
        columns.append((column, {str(c): float(code) for code, c in enumerate(categories)}))
    return columns


def _tree_inputs(booster: Any, columns: list[_Column]) -> tuple[TreeInput, ...]:
    """The trees' inputs: the booster re-encodes its categorical columns, placed first."""
    own_encoder = sklearn_internals.has_own_encoder(booster)
    mask = [bool(m) for m in booster.is_categorical_] if own_encoder else [False] * len(columns)
    if mask != [codes is not None for _, codes in columns]:
        raise UnsupportedPipeline("the booster's categorical features are not the encoded columns")
    if not own_encoder:
        return tuple(TreeInput(name) for name, _ in columns)
    encoding = sklearn_internals.own_encoding(booster)
    categorical = [column for column in columns if column[1] is not None]
    inputs = []
    for (name, outer), inner_codes, known in zip(
        categorical, encoding.categories, encoding.known, strict=True
    ):
        # The booster's code of a category is the position of the pipeline's code among
        # the codes it saw in training (NaN, for missing values, is not a category).
        position = {code: i for i, code in enumerate(inner_codes) if not is_nan(code)}
        codes = {category: position[code] for category, code in outer.items() if code in position}
        inputs.append(TreeInput(name, codes, known))
    inputs.extend(TreeInput(name) for name, codes in columns if codes is None)
    return tuple(inputs)


def _check_split_kinds(tree: Tree, inputs: tuple[TreeInput, ...]) -> None:
    """A categorical split must read a categorical input, a numeric split a numeric one."""
    for feature, categories_left in zip(tree.feature, tree.categories_left, strict=True):
        if feature is not None and (categories_left is not None) != inputs[feature].is_categorical:
            raise UnsupportedPipeline("a split's kind differs from its feature's")
