"""The linear fast path against its reference, the pipeline's own ``predict_proba``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from ml.compiled_form import CompiledFormError, logistic
from ml.linear_fastpath import LinearScorer
from ml.manifest import (
    CategoricalFeature,
    ModelManifest,
    NumericFeature,
    TabularInput,
    read_manifest,
)
from ml.packaging.compile import compiled_text
from ml.packaging.compile_linear import compile_linear_pipeline
from ml.tabular import TabularValidator
from tests.helpers import HELDOUT_CSV

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "models"
LOGREG_DIR = MODELS_DIR / "attrition-logreg" / "1"
# The compiled form repeats predict_proba's float64 arithmetic (scale, weigh, sum, logistic),
# only in another order, so the two differ by rounding: at most 3e-16 (3e-15 relative) on the
# held-out rows. 1e-9 relative leaves room for longer sums and still fails on any real
# mistake (a wrong weight or offset, a dropped term moves a probability by far more);
# 1e-12 absolute is for probabilities near 0, where a relative difference means nothing.
# Stated here, not imported from ml.packaging.compile: loosening packaging's proof must not
# loosen this test with it.
RTOL, ATOL = 1e-9, 1e-12

NUMERIC = ["size", "weight"]
CATEGORICAL = ["color", "shape"]
SCHEMA = TabularInput(
    features=[
        NumericFeature(name="size", type="integer", minimum=0, maximum=100),
        CategoricalFeature(name="color", type="category", categories=["blue", "green", "red"]),
        NumericFeature(name="weight", type="number"),
        CategoricalFeature(name="shape", type="category", categories=["round", "square"]),
    ],
    example={"size": 10, "color": "red", "weight": 2.5, "shape": "round"},
)


def synthetic_frame(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.integers(0, 100, rows),
            "color": rng.choice(["blue", "green", "red"], rows),
            "weight": rng.normal(50.0, 20.0, rows),
            "shape": rng.choice(["round", "square"], rows),
        }
    )
    score = 0.04 * frame["size"] - 0.02 * frame["weight"] + (frame["color"] == "red") * 1.5
    target = np.where(score + rng.normal(0, 1, rows) > 1.0, "yes", "no")
    return frame, target


def linear_pipeline(
    scaler: object | None = None,
    encoder: object | None = None,
    **classifier_params: object,
) -> Pipeline:
    return Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", scaler if scaler is not None else StandardScaler(), NUMERIC),
                        (
                            "categorical",
                            encoder or OneHotEncoder(handle_unknown="ignore"),
                            CATEGORICAL,
                        ),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(**classifier_params)),
        ]
    )


@pytest.fixture(scope="module")
def synthetic_data() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_frame(300)


def fitted(pipeline: Pipeline, data: tuple[pd.DataFrame, np.ndarray]) -> Pipeline:
    frame, target = data
    return pipeline.fit(frame, target)


# --- the committed default model, on every held-out row ---------------------------------


@pytest.fixture(scope="module")
def logreg_manifest() -> ModelManifest:
    return read_manifest(LOGREG_DIR / "manifest.json")


@pytest.fixture(scope="module")
def logreg_pipeline(logreg_manifest: ModelManifest) -> Pipeline:
    return joblib.load(LOGREG_DIR / logreg_manifest.artifact)


def committed_json(manifest: ModelManifest) -> str:
    assert manifest.compiled is not None
    return (LOGREG_DIR / manifest.compiled.artifact).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def committed_scorer(logreg_manifest: ModelManifest) -> LinearScorer:
    return LinearScorer.from_dict(json.loads(committed_json(logreg_manifest)))


@pytest.fixture(scope="module")
def heldout() -> pd.DataFrame:
    return pd.read_csv(HELDOUT_CSV)


def test_committed_logreg_compiles(
    logreg_pipeline: Pipeline,
    logreg_manifest: ModelManifest,
) -> None:
    scorer = compile_linear_pipeline(logreg_pipeline, logreg_manifest.input)

    assert isinstance(scorer, LinearScorer)
    assert (scorer.negative_class, scorer.positive_class) == ("No", "Yes")
    assert len(scorer.numeric_weights) == 16
    assert len(scorer.category_weights) == 14


def test_committed_json_is_the_compiled_pipeline(
    logreg_pipeline: Pipeline,
    logreg_manifest: ModelManifest,
    committed_scorer: LinearScorer,
) -> None:
    scorer = compile_linear_pipeline(logreg_pipeline, logreg_manifest.input)
    assert scorer is not None

    assert logreg_manifest.compiled is not None
    assert logreg_manifest.compiled.kind == "linear-logistic"
    assert committed_scorer == scorer
    assert committed_scorer.offset == scorer.offset
    # Byte for byte what training writes: sorted keys, so the file is deterministic.
    assert committed_json(logreg_manifest) == compiled_text(scorer)


@pytest.mark.parametrize("source", ["compiled here", "committed JSON"])
def test_fast_path_equals_predict_proba_on_all_heldout_rows(
    logreg_pipeline: Pipeline,
    logreg_manifest: ModelManifest,
    heldout: pd.DataFrame,
    committed_scorer: LinearScorer,
    source: str,
) -> None:
    scorer = (
        compile_linear_pipeline(logreg_pipeline, logreg_manifest.input)
        if source == "compiled here"
        else committed_scorer
    )
    assert scorer is not None
    features = heldout.drop(columns=["Attrition"])
    # The reference is fed the CSV as read; the fast path the rows as the API validates them.
    reference = logreg_pipeline.predict_proba(features)
    rows = TabularValidator(logreg_manifest.input).validate(
        features.to_dict("records"),
        field_prefix="instances",
    )

    fast_yes = np.array([scorer.positive_probability(row) for row in rows])

    assert len(rows) == 294
    assert list(logreg_pipeline.classes_) == ["No", "Yes"]
    assert np.allclose(fast_yes, reference[:, 1], rtol=RTOL, atol=ATOL)
    assert np.allclose(1.0 - fast_yes, reference[:, 0], rtol=RTOL, atol=ATOL)
    threshold = logreg_manifest.output.decision_threshold
    assert threshold is not None
    assert np.array_equal(fast_yes >= threshold, reference[:, 1] >= threshold)


def test_committed_gbm_has_no_fast_path() -> None:
    manifest = read_manifest(MODELS_DIR / "attrition-gbm" / "1" / "manifest.json")
    pipeline = joblib.load(MODELS_DIR / "attrition-gbm" / "1" / manifest.artifact)

    assert compile_linear_pipeline(pipeline, manifest.input) is None


# --- small pipelines fitted here ---------------------------------------------------------


@pytest.mark.parametrize(
    "params", [{}, {"C": 0.01}, {"class_weight": "balanced"}, {"fit_intercept": False}]
)
def test_synthetic_pipeline_equals_predict_proba(
    synthetic_data: tuple[pd.DataFrame, np.ndarray],
    params: dict,
) -> None:
    pipeline = fitted(linear_pipeline(**params), synthetic_data)
    scorer = compile_linear_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    frame, _ = synthetic_frame(200, seed=1)

    fast = [scorer.positive_probability(row) for row in frame.to_dict("records")]

    assert np.allclose(fast, pipeline.predict_proba(frame)[:, 1], rtol=RTOL, atol=ATOL)


def test_json_round_trip_is_exact(synthetic_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    pipeline = fitted(linear_pipeline(), synthetic_data)
    scorer = compile_linear_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    rows = synthetic_frame(50, seed=3)[0].to_dict("records")

    again = LinearScorer.from_dict(json.loads(compiled_text(scorer)))

    assert again == scorer
    assert again.to_dict() == scorer.to_dict()
    assert [again.decision_function(row) for row in rows] == [
        scorer.decision_function(row) for row in rows
    ]
    assert again.features == {
        "size": "number",
        "weight": "number",
        "color": "category",
        "shape": "category",
    }


MALFORMED = {
    "wrong kind": lambda form: form.update(kind="tree-ensemble"),
    "other link": lambda form: form.update(link="probit"),
    "missing intercept": lambda form: form.pop("intercept"),
    "infinite weight": lambda form: form["numeric"][0].update(weight=float("inf")),
    "boolean offset": lambda form: form["numeric"][0].update(offset=True),
    "numeric terms not a list": lambda form: form.update(numeric={}),
    "category weight as text": lambda form: form["categorical"][0]["contributions"].update(
        red="0.5"
    ),
    "empty object": lambda form: form.clear(),
}


@pytest.mark.parametrize("damage", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_forms_are_refused(
    synthetic_data: tuple[pd.DataFrame, np.ndarray],
    damage: Any,
) -> None:
    scorer = compile_linear_pipeline(fitted(linear_pipeline(), synthetic_data), SCHEMA)
    assert scorer is not None
    form = copy.deepcopy(scorer.to_dict())
    damage(form)

    with pytest.raises(CompiledFormError):
        LinearScorer.from_dict(form)
    with pytest.raises(CompiledFormError):
        LinearScorer.from_dict([form])


def test_unseen_category_weighs_nothing_as_in_the_encoder(
    synthetic_data: tuple[pd.DataFrame, np.ndarray],
) -> None:
    pipeline = fitted(linear_pipeline(), synthetic_data)
    scorer = compile_linear_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    row = {"size": 40, "color": "purple", "weight": 10.0, "shape": "round"}

    expected = pipeline.predict_proba(pd.DataFrame([row]))[0, 1]

    assert scorer.positive_probability(row) == pytest.approx(expected, rel=RTOL, abs=ATOL)


def test_extreme_inputs_do_not_overflow(synthetic_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    pipeline = fitted(linear_pipeline(), synthetic_data)
    scorer = compile_linear_pipeline(pipeline, SCHEMA)
    assert scorer is not None
    rows = [
        {"size": 0, "color": "blue", "weight": weight, "shape": "round"} for weight in (-1e6, 1e6)
    ]

    fast = [scorer.positive_probability(row) for row in rows]

    assert np.allclose(fast, pipeline.predict_proba(pd.DataFrame(rows))[:, 1], rtol=RTOL, atol=ATOL)


def test_logistic_is_stable_and_matches_expit() -> None:
    grid = np.linspace(-800.0, 800.0, 4001)

    ours = np.array([logistic(float(z)) for z in grid])

    assert logistic(0.0) == 0.5
    assert logistic(1000.0) == 1.0
    assert logistic(-1000.0) == 0.0
    # atol covers the subnormal tail (about e^-709), where expit already gives 0.
    assert np.allclose(ours, expit(grid), rtol=1e-15, atol=1e-300)


# --- shapes that are refused ---------------------------------------------------------------


class LogisticRegressionSubclass(LogisticRegression):
    """A subclass may override predict_proba, so the fast path must not trust it."""


def three_class_data(data: tuple[pd.DataFrame, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    frame, target = data
    return frame, np.where(frame["size"] > 66, "maybe", target)


UNSUPPORTED = {
    "min-max scaler": lambda: linear_pipeline(scaler=MinMaxScaler()),
    "scaler without centring": lambda: linear_pipeline(scaler=StandardScaler(with_mean=False)),
    "scaler without scaling": lambda: linear_pipeline(scaler=StandardScaler(with_std=False)),
    "encoder dropping a category": lambda: linear_pipeline(
        encoder=OneHotEncoder(handle_unknown="ignore", drop="first")
    ),
    "encoder refusing unknowns": lambda: linear_pipeline(encoder=OneHotEncoder()),
    "encoder grouping infrequent": lambda: linear_pipeline(
        encoder=OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.4)
    ),
    "encoder capping categories": lambda: linear_pipeline(
        encoder=OneHotEncoder(handle_unknown="ignore", max_categories=2)
    ),
    "float32 encoder": lambda: linear_pipeline(
        encoder=OneHotEncoder(handle_unknown="ignore", dtype=np.float32)
    ),
    "tree classifier": lambda: Pipeline(
        [
            ("preprocess", linear_pipeline().steps[0][1]),
            ("classifier", DecisionTreeClassifier()),
        ]
    ),
    "logistic regression subclass": lambda: Pipeline(
        [
            ("preprocess", linear_pipeline().steps[0][1]),
            ("classifier", LogisticRegressionSubclass()),
        ]
    ),
    "passthrough remainder": lambda: Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), ["size"]),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ],
                    remainder="passthrough",
                ),
            ),
            ("classifier", LogisticRegression()),
        ]
    ),
    "weighted transformers": lambda: Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), NUMERIC),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ],
                    transformer_weights={"numeric": 2.0, "categorical": 1.0},
                ),
            ),
            ("classifier", LogisticRegression()),
        ]
    ),
    "three steps": lambda: Pipeline(
        [
            *linear_pipeline().steps[:1],
            ("identity", "passthrough"),
            *linear_pipeline().steps[1:],
        ]
    ),
}


@pytest.mark.parametrize("build", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_pipelines_are_refused(
    synthetic_data: tuple[pd.DataFrame, np.ndarray],
    build: object,
) -> None:
    pipeline = fitted(build(), synthetic_data)

    assert compile_linear_pipeline(pipeline, SCHEMA) is None


def test_multiclass_logistic_regression_is_refused(
    synthetic_data: tuple[pd.DataFrame, np.ndarray],
) -> None:
    pipeline = fitted(linear_pipeline(), three_class_data(synthetic_data))

    assert compile_linear_pipeline(pipeline, SCHEMA) is None


def test_unfitted_pipeline_and_other_objects_are_refused() -> None:
    assert compile_linear_pipeline(linear_pipeline(), SCHEMA) is None
    assert compile_linear_pipeline(LogisticRegression(), SCHEMA) is None
    assert compile_linear_pipeline("not a model", SCHEMA) is None


def test_columns_that_disagree_with_the_schema_are_refused(
    synthetic_data: tuple[pd.DataFrame, np.ndarray],
) -> None:
    pipeline = fitted(linear_pipeline(), synthetic_data)
    size_as_category = TabularInput(
        features=[
            CategoricalFeature(name="size", type="category", categories=["0"]),
            *SCHEMA.features[1:],
        ],
        example=SCHEMA.example,
    )
    without_shape = TabularInput(features=SCHEMA.features[:3], example=SCHEMA.example)

    assert compile_linear_pipeline(pipeline, size_as_category) is None
    assert compile_linear_pipeline(pipeline, without_shape) is None
