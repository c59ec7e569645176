"""The tree-ensemble fast path against its reference, the pipeline's own ``predict_proba``."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from ml.compiled_form import CompiledFormError
from ml.manifest import (
    CategoricalFeature,
    ModelManifest,
    NumericFeature,
    TabularInput,
    read_manifest,
)
from ml.packaging.compile import compiled_text
from ml.packaging.compile_tree import compile_tree_pipeline
from ml.tabular import TabularValidator
from ml.tree_fastpath import TreeEnsembleScorer
from tests.helpers import HELDOUT_CSV

ROOT = Path(__file__).resolve().parents[2]
GBM_DIR = ROOT / "models" / "attrition-gbm" / "1"
# The raw score is the very float the booster sums (asserted exactly below); only the logistic
# differs, the compiled form's against scikit-learn's expit: by at most 2e-16 on the held-out
# rows. 1e-9 relative is far above that rounding and far below any real mistake (a wrong
# leaf or threshold moves a probability by much more); 1e-12 absolute is for probabilities
# near 0. Stated here, not imported from ml.packaging.compile: loosening packaging's proof
# must not loosen this test with it.
RTOL, ATOL = 1e-9, 1e-12

NUMERIC = ["size", "weight"]
CATEGORICAL = ["color", "shape"]
SCHEMA = TabularInput(
    features=[
        NumericFeature(name="size", type="integer", minimum=0, maximum=100),
        # "purple" is valid input that training never saw: the booster treats it as missing.
        CategoricalFeature(
            name="color", type="category", categories=["blue", "green", "purple", "red"]
        ),
        NumericFeature(name="weight", type="number"),
        CategoricalFeature(name="shape", type="category", categories=["round", "square"]),
    ],
    example={"size": 10, "color": "red", "weight": 2.5, "shape": "round"},
)


def round_trip(scorer: TreeEnsembleScorer) -> TreeEnsembleScorer:
    return TreeEnsembleScorer.from_dict(json.loads(compiled_text(scorer)))


# --- the committed challenger, through its committed JSON -------------------------------------


@pytest.fixture(scope="module")
def gbm_manifest() -> ModelManifest:
    return read_manifest(GBM_DIR / "manifest.json")


@pytest.fixture(scope="module")
def gbm_pipeline(gbm_manifest: ModelManifest) -> Pipeline:
    return joblib.load(GBM_DIR / gbm_manifest.artifact)


@pytest.fixture(scope="module")
def committed_scorer(gbm_manifest: ModelManifest) -> TreeEnsembleScorer:
    assert gbm_manifest.compiled is not None
    text = (GBM_DIR / gbm_manifest.compiled.artifact).read_text(encoding="utf-8")
    return TreeEnsembleScorer.from_dict(json.loads(text))


def test_committed_json_is_the_compiled_pipeline(
    gbm_manifest: ModelManifest,
    gbm_pipeline: Pipeline,
    committed_scorer: TreeEnsembleScorer,
) -> None:
    scorer = compile_tree_pipeline(gbm_pipeline, gbm_manifest.input)
    assert gbm_manifest.compiled is not None
    text = (GBM_DIR / gbm_manifest.compiled.artifact).read_text(encoding="utf-8")

    assert gbm_manifest.compiled.kind == "tree-ensemble"
    assert committed_scorer == scorer
    # Byte for byte what training writes: sorted keys, so the file is deterministic.
    assert text == compiled_text(scorer)
    assert (scorer.negative_class, scorer.positive_class) == ("No", "Yes")
    assert len(scorer.trees) == 300
    # The booster puts its 14 categorical inputs first, then the 16 numbers.
    assert [i.is_categorical for i in scorer.inputs] == [True] * 14 + [False] * 16
    assert scorer.max_splits == sum(tree.depth for tree in scorer.trees) == 900


def test_committed_json_equals_predict_proba_on_all_heldout_rows(
    gbm_manifest: ModelManifest,
    gbm_pipeline: Pipeline,
    committed_scorer: TreeEnsembleScorer,
) -> None:
    features = pd.read_csv(HELDOUT_CSV).drop(columns=["Attrition"])
    # The reference is fed the CSV as read; the fast path the rows as the API validates them.
    reference = gbm_pipeline.predict_proba(features)
    rows = TabularValidator(gbm_manifest.input).validate(
        features.to_dict("records"),
        field_prefix="instances",
    )

    fast_yes = np.array([committed_scorer.positive_probability(row) for row in rows])
    raw = [committed_scorer.raw_prediction(row) for row in rows]

    assert len(rows) == 294
    assert list(gbm_pipeline.classes_) == ["No", "Yes"]
    # The raw score is the same float: the same leaves, summed in the same order.
    assert raw == gbm_pipeline.decision_function(features).tolist()
    assert np.allclose(fast_yes, reference[:, 1], rtol=RTOL, atol=ATOL)
    assert np.allclose(1.0 - fast_yes, reference[:, 0], rtol=RTOL, atol=ATOL)
    threshold = gbm_manifest.output.decision_threshold
    assert threshold is not None
    assert np.array_equal(fast_yes >= threshold, reference[:, 1] >= threshold)


def one_thread() -> Iterator[None]:
    # On a busy machine the booster's OpenMP spin-waits make these small fits crawl.
    with threadpool_limits(limits=1):
        yield


def synthetic_frame(
    rows: int,
    seed: int = 0,
    nan_share: float = 0.0,
) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.integers(0, 100, rows),
            "color": rng.choice(["blue", "green", "red"], rows),
            "weight": rng.normal(50.0, 20.0, rows),
            "shape": rng.choice(["round", "square"], rows),
        }
    )
    score = (
        0.04 * frame["size"]
        - 0.02 * frame["weight"]
        + (frame["color"] == "red") * 1.5
        - (frame["shape"] == "square") * 0.8
    )
    target = np.where(score + rng.normal(0, 1, rows) > 1.0, "yes", "no")
    if nan_share:
        frame.loc[rng.random(rows) < nan_share, "weight"] = np.nan
    return frame, target


def booster_pipeline(
    *,
    numbers_first: bool = False,
    encoder: object | None = None,
    native: bool = True,
    **params: Any,
) -> Pipeline:
    ordinal = encoder or OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    blocks = [("categorical", ordinal, CATEGORICAL), ("numeric", "passthrough", NUMERIC)]
    if numbers_first:
        blocks.reverse()
    first_category = len(NUMERIC) if numbers_first else 0
    categorical = list(range(first_category, first_category + len(CATEGORICAL)))
    classifier = HistGradientBoostingClassifier(
        categorical_features=categorical if native else None,
        **{"max_iter": 40, "random_state": 0, **params},
    )
    return Pipeline([("preprocess", ColumnTransformer(blocks)), ("classifier", classifier)])


def probe_frame() -> pd.DataFrame:
    """Fresh rows, with every schema category (the unseen "purple" included) many times."""
    frame, _ = synthetic_frame(400, seed=1)
    frame["color"] = np.resize(["blue", "green", "purple", "red"], len(frame))
    return frame


def assert_equal_to_pipeline(
    scorer: TreeEnsembleScorer, pipeline: Pipeline, frame: pd.DataFrame
) -> None:
    rows = frame.to_dict("records")
    raw = [scorer.raw_prediction(row) for row in rows]
    fast = [scorer.positive_probability(row) for row in rows]

    assert raw == pipeline.decision_function(frame).tolist()
    assert np.allclose(fast, pipeline.predict_proba(frame)[:, 1], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"max_depth": 2, "learning_rate": 0.3},
        {"max_leaf_nodes": 4, "min_samples_leaf": 5},
        {"l2_regularization": 5.0, "class_weight": "balanced"},
    ],
    ids=["default", "shallow", "few-leaves", "regularised-balanced"],
)
def test_synthetic_pipeline_equals_predict_proba(params: dict[str, Any]) -> None:
    pipeline = booster_pipeline(**params).fit(*synthetic_frame(600))
    scorer = compile_tree_pipeline(pipeline, SCHEMA)
    assert scorer is not None

    assert_equal_to_pipeline(round_trip(scorer), pipeline, probe_frame())


def test_categorical_columns_after_the_numbers_are_remapped() -> None:
    # The booster moves its categorical inputs first; the compiled inputs must follow.
    pipeline = booster_pipeline(numbers_first=True).fit(*synthetic_frame(600))
    scorer = compile_tree_pipeline(pipeline, SCHEMA)
    assert scorer is not None

    assert [i.feature for i in scorer.inputs] == ["color", "shape", "size", "weight"]
    assert_equal_to_pipeline(round_trip(scorer), pipeline, probe_frame())


def test_unknown_categories_are_treated_as_missing_as_in_the_booster() -> None:
    pipeline = booster_pipeline(max_depth=2).fit(*synthetic_frame(600))
    scorer = compile_tree_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    frame = pd.DataFrame(
        {
            "size": [5, 50, 95] * 3,
            "weight": [10.0, 50.0, 90.0] * 3,
            "color": ["purple"] * 3 + ["violet"] * 3 + ["red"] * 3,
            "shape": ["round", "square", "round"] * 3,
        }
    )

    assert_equal_to_pipeline(scorer, pipeline, frame)


def test_a_number_equal_to_a_threshold_goes_left_as_in_the_booster() -> None:
    pipeline = booster_pipeline().fit(*synthetic_frame(600))
    scorer = compile_tree_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    weight = [i.feature for i in scorer.inputs].index("weight")
    thresholds = sorted(
        {
            tree.threshold[node]
            for tree in scorer.trees
            for node, feature in enumerate(tree.feature)
            if feature == weight
        }
    )
    frame = pd.DataFrame({"size": 50, "color": "red", "weight": thresholds, "shape": "round"})

    assert len(thresholds) > 10
    assert_equal_to_pipeline(scorer, pipeline, frame)


def test_missing_numbers_follow_the_side_learned_in_training() -> None:
    pipeline = booster_pipeline().fit(*synthetic_frame(600, nan_share=0.3))
    scorer = compile_tree_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    frame, _ = synthetic_frame(300, seed=2, nan_share=0.5)

    assert any(tree.missing_left[0] for tree in scorer.trees)
    assert_equal_to_pipeline(round_trip(scorer), pipeline, frame)


def test_json_round_trip_is_exact() -> None:
    pipeline = booster_pipeline().fit(*synthetic_frame(600))
    scorer = compile_tree_pipeline(pipeline, SCHEMA)
    assert scorer is not None

    again = round_trip(scorer)

    assert again == scorer
    assert again.to_dict() == scorer.to_dict()
    assert again.features == {
        "color": "category",
        "shape": "category",
        "size": "number",
        "weight": "number",
    }


# --- shapes that are refused ---------------------------------------------------------------------


class BoosterSubclass(HistGradientBoostingClassifier):
    """A subclass may override predict_proba, so the fast path must not trust it."""


def three_class_target(frame: pd.DataFrame, target: np.ndarray) -> np.ndarray:
    return np.where(frame["size"] > 66, "maybe", target)


UNSUPPORTED = {
    "one-hot categories": lambda: booster_pipeline(
        encoder=OneHotEncoder(handle_unknown="ignore", sparse_output=False), native=False
    ),
    "encoder refusing unknowns": lambda: booster_pipeline(encoder=OrdinalEncoder()),
    "codes used as numbers": lambda: booster_pipeline(native=False),
    "scaled numbers": lambda: Pipeline(
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
                            CATEGORICAL,
                        ),
                        ("numeric", StandardScaler(), NUMERIC),
                    ]
                ),
            ),
            ("classifier", HistGradientBoostingClassifier(categorical_features=[0, 1], max_iter=5)),
        ]
    ),
    "booster subclass": lambda: Pipeline(
        [
            booster_pipeline().steps[0],
            ("classifier", BoosterSubclass(categorical_features=[0, 1], max_iter=5)),
        ]
    ),
    "regressor": lambda: Pipeline(
        [
            booster_pipeline().steps[0],
            ("classifier", HistGradientBoostingRegressor(categorical_features=[0, 1], max_iter=5)),
        ]
    ),
    "three steps": lambda: Pipeline(
        [
            *booster_pipeline().steps[:1],
            ("identity", "passthrough"),
            *booster_pipeline().steps[1:],
        ]
    ),
}


@pytest.mark.parametrize("build", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_pipelines_are_refused(build: Any) -> None:
    frame, target = synthetic_frame(300)
    pipeline = build()
    if isinstance(pipeline.steps[-1][1], HistGradientBoostingRegressor):
        target = (target == "yes").astype(float)

    assert compile_tree_pipeline(pipeline.fit(frame, target), SCHEMA) is None


def test_multiclass_booster_is_refused() -> None:
    frame, target = synthetic_frame(300)
    pipeline = booster_pipeline().fit(frame, three_class_target(frame, target))

    assert compile_tree_pipeline(pipeline, SCHEMA) is None


def test_unfitted_pipeline_other_objects_and_other_schemas_are_refused() -> None:
    fitted = booster_pipeline().fit(*synthetic_frame(300))
    color_as_number = TabularInput(
        features=[
            SCHEMA.features[0],
            NumericFeature(name="color", type="number"),
            *SCHEMA.features[2:],
        ],
        example=SCHEMA.example,
    )

    assert compile_tree_pipeline(booster_pipeline(), SCHEMA) is None
    assert compile_tree_pipeline(HistGradientBoostingClassifier(), SCHEMA) is None
    assert compile_tree_pipeline("not a model", SCHEMA) is None
    assert compile_tree_pipeline(fitted, color_as_number) is None


# --- malformed JSON forms ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_form() -> dict[str, Any]:
    pipeline = booster_pipeline(max_iter=3, max_depth=2).fit(*synthetic_frame(300))
    scorer = compile_tree_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    return scorer.to_dict()


def first_split(form: dict[str, Any], categorical: bool) -> tuple[dict[str, Any], int]:
    """A tree and the index of its first split on a categorical (or numeric) input."""
    for tree in form["trees"]:
        for node, feature in enumerate(tree["feature"]):
            if feature is not None and ("categories" in form["inputs"][feature]) == categorical:
                return tree, node
    raise AssertionError("no such split")


def break_cycle(form: dict[str, Any]) -> None:
    tree, node = first_split(form, categorical=False)
    tree["left"][node] = node  # a child must come after its parent, or the walk never ends


def break_lengths(form: dict[str, Any]) -> None:
    form["trees"][0]["value"].pop()


def break_numeric_split(form: dict[str, Any]) -> None:
    tree, node = first_split(form, categorical=False)
    tree["threshold"][node], tree["categories_left"][node] = None, [0]


def break_categorical_split(form: dict[str, Any]) -> None:
    tree, node = first_split(form, categorical=True)
    tree["categories_left"][node], tree["threshold"][node] = None, 0.5


MALFORMED = {
    "wrong kind": lambda form: form.update(kind="linear-logistic"),
    "other format": lambda form: form.update(format=2),
    "non-finite baseline": lambda form: form.update(baseline=float("nan")),
    "boolean threshold": lambda form: first_split(form, False)[0]["threshold"].__setitem__(
        first_split(form, False)[1], True
    ),
    "code out of range": lambda form: next(i for i in form["inputs"] if "categories" in i)[
        "known"
    ].append(256),
    "missing trees": lambda form: form.pop("trees"),
    "child before its parent": break_cycle,
    "arrays of different lengths": break_lengths,
    "numeric split without threshold": break_numeric_split,
    "categorical split without categories": break_categorical_split,
}


@pytest.mark.parametrize("damage", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_forms_are_refused(small_form: dict[str, Any], damage: Any) -> None:
    form = copy.deepcopy(small_form)
    damage(form)

    with pytest.raises(CompiledFormError):
        TreeEnsembleScorer.from_dict(form)
