"""An exact, pure-Python form of a fitted binary ``HistGradientBoostingClassifier`` pipeline.

The pipeline is a ``ColumnTransformer`` (``OrdinalEncoder`` on the categories, numbers
passed through) feeding the booster with native categorical splits. Its probability is

    p(positive) = logistic(baseline + sum over trees of the leaf the row reaches)

with scikit-learn's own routing at each node (``_predictor.pyx``, ``_predict_from_raw_data``):

* missing value (NaN): the node's ``missing_go_to_left`` side;
* numeric split: ``x <= threshold`` goes left, else right;
* categorical split: a category in the node's left set goes left, a category the booster
  saw in training goes right, any other (unknown) category is treated as missing.

A category string reaches the trees through two ordinal encoders, the pipeline's and the
booster's own (it re-encodes the categorical columns it is given); the compiled form keeps
their composition, ``{category: code}``, and the codes the booster knows. The leaves are
summed in tree order from the baseline, as ``_raw_predict`` does, so the raw score is the
same float and the probability agrees with ``predict_proba`` to the last bits of ``expit``.

The scorer's JSON form (``to_dict`` / ``from_dict``) keeps every tree node for node as
scikit-learn stores it. Reading it needs no numpy, scikit-learn or pandas: those are
imported only by ``compile_tree_pipeline``, which reads the booster's private attributes
(``_predictors``, ``_preprocessor``, ``_bin_mapper``, ``_baseline_prediction``); anything
unexpected there is refused, and training proves the result equal to ``predict_proba``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml.compiled_form import (
    FORMAT_VERSION,
    CompiledFormError,
    UnsupportedPipeline,
    compile_or_none,
    json_bool,
    require_features,
    json_float,
    json_int,
    json_list,
    json_object,
    json_objects,
    json_str,
    logistic,
    read_header,
)
from ml.manifest import CategoricalFeature, NumericFeature, TabularInput

logger = logging.getLogger(__name__)

TREE_KIND = "tree-ensemble"
_BITSET_WORDS, _BITS_PER_WORD = 8, 32  # scikit-learn's bitsets: 8 uint32, categories 0..255


@dataclass(frozen=True, slots=True)
class TreeInput:
    """One input of the trees: a numeric feature as is, or a category as its code."""

    feature: str
    codes: Mapping[str, int] | None = None
    """For a categorical input, ``{category: code}``; a category not in it is missing."""
    known: frozenset[int] = frozenset()
    """The codes the booster saw in training; other codes are treated as missing."""

    @property
    def is_categorical(self) -> bool:
        return self.codes is not None


@dataclass(frozen=True, slots=True)
class Tree:
    """One tree, node for node as scikit-learn stores it; a leaf has ``feature`` None."""

    feature: tuple[int | None, ...]
    """Index into the scorer's ``inputs``."""
    threshold: tuple[float | None, ...]
    """Numeric split: ``x <= threshold`` goes left."""
    categories_left: tuple[frozenset[int] | None, ...]
    """Categorical split: the codes that go left."""
    missing_left: tuple[bool | None, ...]
    left: tuple[int | None, ...]
    right: tuple[int | None, ...]
    value: tuple[float | None, ...]
    """The leaf values (learning rate included)."""

    @property
    def depth(self) -> int:
        """The most splits a row meets on its way to a leaf."""
        depths = [0] * len(self.feature)
        for node, feature in enumerate(self.feature):
            if feature is not None:  # children come after their parent (checked on load)
                depths[self.left[node]] = depths[self.right[node]] = depths[node] + 1
        return max(depths)


# A node as evaluated: (input, threshold, left, right, missing). A categorical node has
# threshold None and ``left`` maps each category string to its child. Children >= 0 are
# split nodes of the same tree; a leaf ``j`` is written ~j (negative), which ends the walk.
_Node = tuple[int, float | None, Any, int, int]
_Plan = tuple[int, tuple[_Node, ...], tuple[float, ...]]
"""A tree as walked: the root's reference, its split nodes and its leaf values."""


@dataclass(frozen=True, slots=True)
class TreeEnsembleScorer:
    """The compiled pipeline: the baseline, the inputs' mapping and the trees."""

    negative_class: str
    positive_class: str
    baseline: float
    inputs: tuple[TreeInput, ...]
    trees: tuple[Tree, ...]
    _readers: tuple[tuple[str, bool], ...] = field(init=False, repr=False, compare=False)
    _plan: tuple[_Plan, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        readers = tuple((tree_input.feature, tree_input.is_categorical)
                        for tree_input in self.inputs)
        plan = tuple(_plan_tree(tree, self.inputs) for tree in self.trees)
        object.__setattr__(self, "_readers", readers)
        object.__setattr__(self, "_plan", plan)

    def raw_prediction(self, row: Mapping[str, Any]) -> float:
        """``baseline`` plus one leaf per tree, as ``_raw_predict`` sums them."""
        # float(): the booster compares float64 values, whatever type the row holds.
        values = [row[name] if categorical else float(row[name])
                  for name, categorical in self._readers]
        total = self.baseline
        for node_index, nodes, leaves in self._plan:
            while node_index >= 0:
                column, threshold, left, right, missing = nodes[node_index]
                x = values[column]
                if threshold is None:
                    node_index = left.get(x, missing)
                elif x <= threshold:
                    node_index = left
                elif x > threshold:
                    node_index = right
                else:  # NaN
                    node_index = missing
            total += leaves[~node_index]
        return total

    def positive_probability(self, row: Mapping[str, Any]) -> float:
        """P(``positive_class``) of one validated row, as ``predict_proba`` computes it."""
        return logistic(self.raw_prediction(row))

    @property
    def features(self) -> dict[str, str]:
        """Every input the scorer reads: ``{name: "number" | "category"}``."""
        return {tree_input.feature: "category" if tree_input.is_categorical else "number"
                for tree_input in self.inputs}

    @property
    def max_splits(self) -> int:
        """The most splits one row can meet over all trees: the cost of a prediction."""
        return sum(tree.depth for tree in self.trees)

    def to_dict(self) -> dict[str, Any]:
        """The exact JSON form."""
        return {
            "format": FORMAT_VERSION,
            "kind": TREE_KIND,
            "link": "logistic",
            "negative_class": self.negative_class,
            "positive_class": self.positive_class,
            "baseline": self.baseline,
            "inputs": [_input_to_dict(tree_input) for tree_input in self.inputs],
            "trees": [_tree_to_dict(tree) for tree in self.trees],
        }

    @classmethod
    def from_dict(cls, data: Any) -> TreeEnsembleScorer:
        """Rebuild the scorer from ``to_dict``'s output; ``CompiledFormError`` if malformed."""
        read_header(data, TREE_KIND)
        return cls(
            negative_class=json_str(data.get("negative_class")),
            positive_class=json_str(data.get("positive_class")),
            baseline=json_float(data.get("baseline")),
            inputs=tuple(_input_from_dict(item) for item in json_objects(data.get("inputs"))),
            trees=tuple(_tree_from_dict(item) for item in json_objects(data.get("trees"))),
        )


def _plan_tree(tree: Tree, inputs: tuple[TreeInput, ...]) -> _Plan:
    """The tree as ``raw_prediction`` walks it; ``CompiledFormError`` if inconsistent."""
    size = len(tree.feature)
    arrays = (tree.threshold, tree.categories_left, tree.missing_left, tree.left, tree.right,
              tree.value)
    if size == 0 or any(len(array) != size for array in arrays):
        raise CompiledFormError("a tree's node arrays are empty or of different lengths")
    splits = [node for node in range(size) if tree.feature[node] is not None]
    leaves = [node for node in range(size) if tree.feature[node] is None]
    ref = {node: position for position, node in enumerate(splits)}
    ref.update({node: ~position for position, node in enumerate(leaves)})
    nodes = tuple(_plan_node(tree, node, inputs, ref) for node in splits)
    leaf_values = tuple(_leaf_value(tree, node) for node in leaves)
    return ref[0], nodes, leaf_values


def _plan_node(tree: Tree, node: int, inputs: tuple[TreeInput, ...],
               ref: Mapping[int, int]) -> _Node:
    column, left, right = tree.feature[node], tree.left[node], tree.right[node]
    missing_left = tree.missing_left[node]
    if not (isinstance(column, int) and 0 <= column < len(inputs)):
        raise CompiledFormError(f"node {node} reads input {column!r}")
    # Children after their parent: every walk ends at a leaf.
    if not all(isinstance(child, int) and node < child < len(tree.feature)
               for child in (left, right)) or not isinstance(missing_left, bool):
        raise CompiledFormError(f"node {node} has children {left!r}, {right!r}")
    missing = ref[left] if missing_left else ref[right]
    tree_input = inputs[column]
    left_codes, threshold = tree.categories_left[node], tree.threshold[node]
    if tree_input.codes is None:
        if threshold is None or left_codes is not None:
            raise CompiledFormError(f"node {node} splits a numeric input without a threshold")
        return column, threshold, ref[left], ref[right], missing
    if threshold is not None or left_codes is None:
        raise CompiledFormError(f"node {node} splits a categorical input without categories")
    # Resolved once per node: in the left set -> left, else known -> right, else missing.
    children = {
        category: ref[left] if code in left_codes else ref[right]
        for category, code in tree_input.codes.items()
        if code in left_codes or code in tree_input.known
    }
    return column, None, children, ref[right], missing


def _leaf_value(tree: Tree, node: int) -> float:
    value = tree.value[node]
    if value is None:
        raise CompiledFormError(f"leaf {node} has no value")
    return value


# --- the JSON form ------------------------------------------------------------------------


def _input_to_dict(tree_input: TreeInput) -> dict[str, Any]:
    if tree_input.codes is None:
        return {"feature": tree_input.feature}
    return {"feature": tree_input.feature, "categories": dict(tree_input.codes),
            "known": sorted(tree_input.known)}


def _input_from_dict(data: dict[str, Any]) -> TreeInput:
    feature = json_str(data.get("feature"))
    if "categories" not in data:
        return TreeInput(feature)
    codes = {json_str(category): _code(code)
             for category, code in json_object(data["categories"]).items()}
    known = frozenset(_code(code) for code in json_list(data.get("known")))
    return TreeInput(feature, codes, known)


def _tree_to_dict(tree: Tree) -> dict[str, Any]:
    return {
        "feature": list(tree.feature),
        "threshold": list(tree.threshold),
        "categories_left": [None if codes is None else sorted(codes)
                            for codes in tree.categories_left],
        "missing_left": list(tree.missing_left),
        "left": list(tree.left),
        "right": list(tree.right),
        "value": list(tree.value),
    }


def _tree_from_dict(data: dict[str, Any]) -> Tree:
    def column(key: str, read: Any) -> tuple[Any, ...]:
        return tuple(None if item is None else read(item) for item in json_list(data.get(key)))

    return Tree(
        feature=column("feature", json_int),
        threshold=column("threshold", json_float),
        categories_left=column("categories_left",
                               lambda codes: frozenset(_code(c) for c in json_list(codes))),
        missing_left=column("missing_left", json_bool),
        left=column("left", json_int),
        right=column("right", json_int),
        value=column("value", json_float),
    )


def _code(value: Any) -> int:
    code = json_int(value)
    if not 0 <= code < _BITSET_WORDS * _BITS_PER_WORD:
        raise CompiledFormError(f"category code {code} is outside 0..255")
    return code


# --- compiling a fitted pipeline ----------------------------------------------------------


def compile_tree_pipeline(pipeline: object, schema: TabularInput) -> TreeEnsembleScorer | None:
    """Compile ``pipeline`` into a :class:`TreeEnsembleScorer`, or ``None`` if its shape differs.

    Exact types are required (no subclasses), so nothing can override the arithmetic.
    """
    return compile_or_none(_compile, pipeline, schema, "tree")


def _compile(pipeline: object, schema: TabularInput) -> TreeEnsembleScorer:
    # Imported here: serving a compiled scorer must not pay for scikit-learn.
    from sklearn._loss.loss import HalfBinomialLoss
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
        raise UnsupportedPipeline("not a two-step Pipeline")
    preprocess, booster = (step for _, step in pipeline.steps)
    if (type(preprocess) is not ColumnTransformer
            or type(booster) is not HistGradientBoostingClassifier):
        raise UnsupportedPipeline(
            f"steps are {type(preprocess).__name__} and {type(booster).__name__}, "
            "not ColumnTransformer and HistGradientBoostingClassifier"
        )
    if not hasattr(preprocess, "transformers_") or not hasattr(booster, "_predictors"):
        raise UnsupportedPipeline("the pipeline is not fitted")
    classes = [str(label) for label in booster.classes_]
    if len(classes) != 2 or booster.n_trees_per_iteration_ != 1:
        raise UnsupportedPipeline(f"the booster has {len(classes)} classes, not 2")
    if type(booster._loss) is not HalfBinomialLoss or booster._baseline_prediction.shape != (1, 1):
        raise UnsupportedPipeline(f"the booster's loss is {type(booster._loss).__name__}")
    columns = _pipeline_columns(preprocess, schema)
    if len(columns) != booster.n_features_in_:
        raise UnsupportedPipeline(f"the pipeline gives {len(columns)} columns, "
                                  f"the booster reads {booster.n_features_in_}")
    inputs = _tree_inputs(booster, columns)
    trees = tuple(
        _compiled_tree(predictor, inputs)
        for predictors_of_iteration in booster._predictors
        for predictor in predictors_of_iteration
    )
    return TreeEnsembleScorer(
        negative_class=classes[0], positive_class=classes[1],
        baseline=float(booster._baseline_prediction[0, 0]), inputs=inputs, trees=trees,
    )


# One column of the booster's input: the schema feature, and for an ordinal-encoded
# category, ``{category: float code}`` (None for a number passed through).
_Column = tuple[str, dict[str, float] | None]


def _pipeline_columns(preprocess: Any, schema: TabularInput) -> list[_Column]:
    """The ``ColumnTransformer``'s output columns, in order, as functions of the row."""
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    if preprocess.transformer_weights is not None or preprocess.sparse_output_:
        raise UnsupportedPipeline("the ColumnTransformer weights its transformers or is sparse")
    features = {feature.name: feature for feature in schema.features}
    blocks = []
    for name, transformer, selected in preprocess.transformers_:
        block = preprocess.output_indices_[name]
        if block.stop == block.start or (isinstance(transformer, str) and transformer == "drop"):
            continue  # dropped columns (the remainder included) do not reach the model
        if not isinstance(selected, list) or not all(isinstance(c, str) for c in selected):
            raise UnsupportedPipeline(f"transformer {name!r} selects columns by position or mask")
        if type(transformer) is OrdinalEncoder:
            require_features(selected, features, CategoricalFeature)
            columns = _ordinal_columns(transformer, selected)
        elif (isinstance(transformer, str) and transformer == "passthrough") or (
            type(transformer) is FunctionTransformer
            and transformer.func is None and transformer.inverse_func is None
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
    if (encoder.handle_unknown != "use_encoded_value" or not _is_nan(encoder.unknown_value)
            or encoder.min_frequency is not None or encoder.max_categories is not None):
        raise UnsupportedPipeline("the OrdinalEncoder must encode unknown categories as NaN "
                                  "and group none")
    columns: list[_Column] = []
    for column, categories in zip(selected, encoder.categories_, strict=True):
        if not all(isinstance(category, str) for category in categories):
            raise UnsupportedPipeline(f"column {column!r} has non-string categories")
        columns.append((column, {str(c): float(code) for code, c in enumerate(categories)}))
    return columns


def _tree_inputs(booster: Any, columns: list[_Column]) -> tuple[TreeInput, ...]:
    """The trees' inputs: the booster re-encodes its categorical columns, placed first."""
    inner = booster._preprocessor
    mask = [False] * len(columns) if inner is None else [bool(m) for m in booster.is_categorical_]
    if mask != [codes is not None for _, codes in columns]:
        raise UnsupportedPipeline("the booster's categorical features are not the encoded columns")
    if inner is None:
        return tuple(TreeInput(name) for name, _ in columns)
    encoder = inner.named_transformers_["encoder"]
    n_categorical = sum(mask)
    if (inner.output_indices_["encoder"] != slice(0, n_categorical)
            or not _is_nan(encoder.unknown_value)
            or list(booster._bin_mapper.is_categorical_) != sorted(mask, reverse=True)):
        raise UnsupportedPipeline("the booster's own encoding is not the one this module knows")
    known_bitsets, bitset_of_feature = booster._bin_mapper.make_known_categories_bitsets()
    categorical = [column for column in columns if column[1] is not None]
    inputs = []
    for feature, ((name, outer), inner_codes) in enumerate(
            zip(categorical, encoder.categories_, strict=True)):
        # The booster's code of a category is the position of the pipeline's code among
        # the codes it saw in training (NaN, for missing values, is not a category).
        position = {float(code): i for i, code in enumerate(inner_codes) if not _is_nan(code)}
        codes = {category: position[code] for category, code in outer.items() if code in position}
        known = _bitset_codes(known_bitsets[bitset_of_feature[feature]])
        inputs.append(TreeInput(name, codes, known))
    inputs.extend(TreeInput(name) for name, codes in columns if codes is None)
    return tuple(inputs)


def _compiled_tree(predictor: Any, inputs: tuple[TreeInput, ...]) -> Tree:
    nodes = predictor.nodes
    arrays: dict[str, list[Any]] = {key: [] for key in Tree.__dataclass_fields__}
    for node in nodes:
        leaf = bool(node["is_leaf"])
        categorical = not leaf and bool(node["is_categorical"])
        if not leaf and categorical != inputs[int(node["feature_idx"])].is_categorical:
            raise UnsupportedPipeline("a split's kind differs from its feature's")
        arrays["feature"].append(None if leaf else int(node["feature_idx"]))
        arrays["threshold"].append(
            None if leaf or categorical else float(node["num_threshold"]))
        arrays["categories_left"].append(
            _bitset_codes(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
            if categorical else None)
        arrays["missing_left"].append(None if leaf else bool(node["missing_go_to_left"]))
        arrays["left"].append(None if leaf else int(node["left"]))
        arrays["right"].append(None if leaf else int(node["right"]))
        arrays["value"].append(float(node["value"]) if leaf else None)
    return Tree(**{key: tuple(values) for key, values in arrays.items()})


def _bitset_codes(bitset: Any) -> frozenset[int]:
    """The members of a scikit-learn bitset: 8 uint32 words, ``c`` is bit c % 32 of word c // 32."""
    if len(bitset) != _BITSET_WORDS:
        raise UnsupportedPipeline(f"a bitset has {len(bitset)} words")
    return frozenset(
        word_index * _BITS_PER_WORD + bit
        for word_index, word in enumerate(int(w) for w in bitset)
        for bit in range(_BITS_PER_WORD) if word >> bit & 1
    )


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
