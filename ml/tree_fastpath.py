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
scikit-learn stores it. Reading it needs no numpy, scikit-learn or pandas. Compiling a fitted
pipeline into it is packaging's work (``ml.packaging.compile_tree``, which alone reads the
booster's private attributes through ``ml.packaging.sklearn_internals``), and packaging
proves the result equal to ``predict_proba`` before it writes the form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml.compiled_form import (
    FORMAT_VERSION,
    CompiledFormError,
    json_bool,
    json_float,
    json_int,
    json_list,
    json_object,
    json_objects,
    json_str,
    logistic,
    read_header,
)

TREE_KIND = "tree-ensemble"
CATEGORY_CODES = 256
"""A category's code is in 0..255: as many as scikit-learn's category bitsets hold."""


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
        nodes = zip(self.feature, self.left, self.right, strict=True)
        for node, (feature, left, right) in enumerate(nodes):
            # A split's children are nodes after it (checked on load).
            if feature is not None and left is not None and right is not None:
                depths[left] = depths[right] = depths[node] + 1
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
        readers = tuple(
            (tree_input.feature, tree_input.is_categorical) for tree_input in self.inputs
        )
        plan = tuple(_plan_tree(tree, self.inputs) for tree in self.trees)
        object.__setattr__(self, "_readers", readers)
        object.__setattr__(self, "_plan", plan)

    def raw_prediction(self, row: Mapping[str, Any]) -> float:
        """``baseline`` plus one leaf per tree, as ``_raw_predict`` sums them."""
        # float(): the booster compares float64 values, whatever type the row holds.
        values = [
            row[name] if categorical else float(row[name]) for name, categorical in self._readers
        ]
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
        return {
            tree_input.feature: "category" if tree_input.is_categorical else "number"
            for tree_input in self.inputs
        }

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
    arrays = (
        tree.threshold,
        tree.categories_left,
        tree.missing_left,
        tree.left,
        tree.right,
        tree.value,
    )
    if size == 0 or any(len(array) != size for array in arrays):
        raise CompiledFormError("a tree's node arrays are empty or of different lengths")
    splits = [node for node in range(size) if tree.feature[node] is not None]
    leaves = [node for node in range(size) if tree.feature[node] is None]
    ref = {node: position for position, node in enumerate(splits)}
    ref.update({node: ~position for position, node in enumerate(leaves)})
    nodes = tuple(_plan_node(tree, node, inputs, ref) for node in splits)
    leaf_values = tuple(_leaf_value(tree, node) for node in leaves)
    return ref[0], nodes, leaf_values


def _plan_node(
    tree: Tree, node: int, inputs: tuple[TreeInput, ...], ref: Mapping[int, int]
) -> _Node:
    column, left, right = tree.feature[node], tree.left[node], tree.right[node]
    missing_left = tree.missing_left[node]
    if not (isinstance(column, int) and 0 <= column < len(inputs)):
        raise CompiledFormError(f"node {node} reads input {column!r}")
    # Children after their parent: every walk ends at a leaf.
    size = len(tree.feature)
    if not (
        isinstance(left, int)
        and node < left < size
        and isinstance(right, int)
        and node < right < size
        and isinstance(missing_left, bool)
    ):
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
    return {
        "feature": tree_input.feature,
        "categories": dict(tree_input.codes),
        "known": sorted(tree_input.known),
    }


def _input_from_dict(data: dict[str, Any]) -> TreeInput:
    feature = json_str(data.get("feature"))
    if "categories" not in data:
        return TreeInput(feature)
    codes = {
        json_str(category): _code(code)
        for category, code in json_object(data["categories"]).items()
    }
    known = frozenset(_code(code) for code in json_list(data.get("known")))
    return TreeInput(feature, codes, known)


def _tree_to_dict(tree: Tree) -> dict[str, Any]:
    return {
        "feature": list(tree.feature),
        "threshold": list(tree.threshold),
        "categories_left": [
            None if codes is None else sorted(codes) for codes in tree.categories_left
        ],
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
        categories_left=column(
            "categories_left", lambda codes: frozenset(_code(c) for c in json_list(codes))
        ),
        missing_left=column("missing_left", json_bool),
        left=column("left", json_int),
        right=column("right", json_int),
        value=column("value", json_float),
    )


def _code(value: Any) -> int:
    code = json_int(value)
    if not 0 <= code < CATEGORY_CODES:
        raise CompiledFormError(f"category code {code} is outside 0..255")
    return code
