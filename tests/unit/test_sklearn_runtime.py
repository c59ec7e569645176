"""The sklearn runtime: real committed models, and small pipelines fitted in tmp_path."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

import ml.sklearn_runtime
from ml.errors import ModelRuntimeError
from ml.manifest import (
    AudioInput,
    CategoricalFeature,
    ModelManifest,
    NumericFeature,
    TabularInput,
    read_manifest,
)
from ml.packaging.compile import compiled_text
from ml.packaging.compile_linear import compile_linear_pipeline
from ml.packaging.compile_tree import compile_tree_pipeline
from ml.runtime import Prediction, runtime_class
from ml.sklearn_runtime import SklearnRuntime
from ml.tabular import TabularValidator
from tests.factories import StoredModel, make_manifest, write_model
from tests.helpers import HELDOUT_CSV, run_python

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "models"

SCHEMA = TabularInput(
    features=[
        NumericFeature(name="size", type="integer", minimum=0, maximum=100),
        CategoricalFeature(name="color", type="category", categories=["blue", "green", "red"]),
        NumericFeature(name="weight", type="number"),
    ],
    example={"size": 10, "color": "red", "weight": 2.5},
)


def synthetic_data(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.integers(0, 100, rows),
            "color": rng.choice(["blue", "green", "red"], rows),
            "weight": rng.normal(50.0, 20.0, rows),
        }
    )
    score = 0.04 * frame["size"] - 0.02 * frame["weight"] + (frame["color"] == "red") * 1.5
    return frame, np.where(score + rng.normal(0, 1, rows) > 1.0, "yes", "no")


def fitted_pipeline(scaler: object) -> Pipeline:
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", scaler, ["size", "weight"]),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                    ]
                ),
            ),
            ("classifier", LogisticRegression()),
        ]
    )
    return pipeline.fit(*synthetic_data())


def fitted_booster() -> Pipeline:
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
                        ("numeric", "passthrough", ["size", "weight"]),
                    ]
                ),
            ),
            (
                "classifier",
                HistGradientBoostingClassifier(
                    categorical_features=[0], max_iter=30, random_state=0
                ),
            ),
        ]
    )
    with threadpool_limits(limits=1):  # OpenMP spin-waits make small fits slow on busy CPUs
        return pipeline.fit(*synthetic_data())


def compiled_form(pipeline: object, schema: TabularInput = SCHEMA) -> str:
    """The compiled form of ``pipeline``, the text ``ml.training.attrition`` writes."""
    scorer = compile_linear_pipeline(pipeline, schema) or compile_tree_pipeline(pipeline, schema)
    assert scorer is not None
    return compiled_text(scorer)


def save_model(
    tmp_path: Path,
    pipeline: object,
    labels: list[str] | None = None,
    threshold: float | None = 0.5,
    schema: TabularInput | AudioInput = SCHEMA,
    compiled: bool = False,
) -> StoredModel:
    """Write the artifact (and its compiled form) and its manifest as the training scripts do."""
    return write_model(
        tmp_path,
        make_manifest(
            "toy",
            "1",
            task="toy-task",
            framework="sklearn",
            input=schema,
            labels=labels or ["no", "yes"],
            positive_label="yes",
            decision_threshold=threshold,
        ),
        artifact=pipeline,
        compiled=compiled_form(pipeline) if compiled else None,
    )


def loaded(manifest: ModelManifest, model_dir: Path) -> SklearnRuntime:
    runtime = SklearnRuntime(manifest, model_dir)
    runtime.load()
    return runtime


def test_registry_resolves_the_sklearn_framework() -> None:
    assert runtime_class("sklearn") is SklearnRuntime


# --- the committed models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def heldout() -> pd.DataFrame:
    return pd.read_csv(HELDOUT_CSV)


COMMITTED = ["attrition-logreg", "attrition-gbm"]


def committed(model: str, compiled: bool = True) -> SklearnRuntime:
    """A committed model, from its compiled form (as served) or from its pipeline."""
    model_dir = MODELS_DIR / model / "1"
    manifest = read_manifest(model_dir / "manifest.json")
    assert manifest.compiled is not None
    if not compiled:
        manifest = manifest.model_copy(update={"compiled": None})
    return loaded(manifest, model_dir)


def heldout_rows(runtime: SklearnRuntime, heldout: pd.DataFrame) -> list[dict[str, object]]:
    return TabularValidator(runtime.schema).validate(
        heldout.drop(columns=["Attrition"]).to_dict("records"),
        field_prefix="instances",
    )


@pytest.mark.parametrize("model", COMMITTED)
def test_committed_model_reproduces_its_heldout_evaluation(
    heldout: pd.DataFrame,
    model: str,
) -> None:
    runtime = committed(model)

    predictions = runtime.predict(heldout_rows(runtime, heldout))

    assert runtime.ready
    # Both compiled forms cost well under 100 µs a row: neither needs the thread pool.
    assert runtime.runs_inline
    assert runtime.uses_fast_path
    labels = runtime.manifest.output.labels
    matrix = pd.crosstab(heldout["Attrition"], [p.label for p in predictions])
    matrix = matrix.reindex(index=labels, columns=labels, fill_value=0)
    assert matrix.to_numpy().tolist() == runtime.manifest.evaluations[0].confusion_matrix


@pytest.mark.parametrize("model", COMMITTED)
def test_committed_compiled_form_equals_the_pipeline(heldout: pd.DataFrame, model: str) -> None:
    runtime = committed(model)
    features = heldout.drop(columns=["Attrition"])
    pipeline = joblib.load(runtime.artifact_path)

    fast = [p.probabilities["Yes"] for p in runtime.predict(heldout_rows(runtime, heldout))]

    assert np.allclose(fast, pipeline.predict_proba(features)[:, 1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model", COMMITTED)
def test_compiled_and_pipeline_runtimes_predict_the_same(
    heldout: pd.DataFrame,
    model: str,
) -> None:
    from_json, from_pipeline = committed(model), committed(model, compiled=False)
    rows = heldout_rows(from_json, heldout)

    fast, reference = from_json.predict(rows), from_pipeline.predict(rows)

    # Without the compiled form both fall back to predict_proba.
    assert not from_pipeline.uses_fast_path
    assert [p.label for p in fast] == [p.label for p in reference]
    for ours, theirs in zip(fast, reference, strict=True):
        assert list(ours.probabilities) == list(theirs.probabilities) == ["No", "Yes"]
        assert np.allclose(
            list(ours.probabilities.values()),
            list(theirs.probabilities.values()),
            rtol=1e-9,
            atol=1e-12,
        )


def test_serving_compiled_models_imports_no_training_library() -> None:
    code = """
import json, sys
from pathlib import Path
from ml.manifest import read_manifest
from ml.runtime import runtime_class
from registry.hashing import verify_artifact
for name in ("attrition-logreg", "attrition-gbm"):
    model_dir = Path("models") / name / "1"
    manifest = read_manifest(model_dir / "manifest.json")
    verify_artifact(manifest, model_dir)
    runtime = runtime_class(manifest.framework)(manifest, model_dir)
    runtime.load()
    runtime.warm_up()
    assert manifest.compiled is not None and runtime.runs_inline, name
print(json.dumps(sorted(m for m in ("sklearn", "scipy", "pandas", "joblib") if m in sys.modules)))
"""

    assert run_python(code) == []


@pytest.mark.parametrize("model", COMMITTED)
def test_prediction_shape(model: str) -> None:
    runtime = committed(model)
    runtime.warm_up()

    (prediction,) = runtime.predict([runtime.schema.example])

    assert isinstance(prediction, Prediction)
    assert list(prediction.probabilities) == ["No", "Yes"]
    assert all(type(p) is float for p in prediction.probabilities.values())
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
    threshold = runtime.manifest.output.decision_threshold
    assert prediction.label == ("Yes" if prediction.probabilities["Yes"] >= threshold else "No")


# --- pipelines fitted here --------------------------------------------------------------------


@pytest.mark.parametrize("scaler", [StandardScaler(), MinMaxScaler()], ids=["linear", "other"])
def test_pipelines_without_compiled_form_use_predict_proba_on_one_batch(
    tmp_path: Path,
    scaler: object,
) -> None:
    # The runtime never compiles: even the linear shape packaging knows is served by the
    # pipeline when its manifest carries no compiled form.
    pipeline = fitted_pipeline(scaler)
    runtime = loaded(*save_model(tmp_path, pipeline))
    frame, _ = synthetic_data(50, seed=1)
    # Validated rows are dicts in schema order; the runtime must not depend on key order.
    rows = [dict(reversed(list(row.items()))) for row in frame.to_dict("records")]

    predictions = runtime.predict(rows)

    assert not runtime.runs_inline and not runtime.uses_fast_path
    expected = pipeline.predict_proba(frame)
    assert [p.probabilities["yes"] for p in predictions] == expected[:, 1].tolist()
    assert [p.label for p in predictions] == np.where(expected[:, 1] >= 0.5, "yes", "no").tolist()
    assert runtime.predict([]) == []


def test_manifest_label_order_is_kept(tmp_path: Path) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(StandardScaler()), labels=["yes", "no"]))

    (prediction,) = runtime.predict([SCHEMA.example])

    assert list(prediction.probabilities) == ["yes", "no"]


@pytest.mark.parametrize(("threshold", "label"), [(0.0, "yes"), (1.0, "no")])
def test_threshold_decides_the_label(tmp_path: Path, threshold: float, label: str) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(StandardScaler()), threshold=threshold))

    assert [p.label for p in runtime.predict([SCHEMA.example] * 3)] == [label] * 3


def test_without_threshold_the_likeliest_label_wins(tmp_path: Path) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(MinMaxScaler()), threshold=None))
    frame, _ = synthetic_data(30, seed=2)

    predictions = runtime.predict(frame.to_dict("records"))

    assert [max(p.probabilities, key=p.probabilities.get) for p in predictions] == [
        p.label for p in predictions
    ]


def test_labels_that_disagree_with_the_artifact_are_refused(tmp_path: Path) -> None:
    manifest, model_dir = save_model(
        tmp_path, fitted_pipeline(StandardScaler()), labels=["maybe", "yes"]
    )
    runtime = SklearnRuntime(manifest, model_dir)

    with pytest.raises(ModelRuntimeError, match="manifest promises"):
        runtime.load()
    assert not runtime.ready


def test_audio_manifest_is_refused(tmp_path: Path) -> None:
    audio = AudioInput(sample_rate=16_000, clip_seconds=1.0, formats=["wav"])

    with pytest.raises(ModelRuntimeError, match="tabular"):
        SklearnRuntime(*save_model(tmp_path, fitted_pipeline(StandardScaler()), schema=audio))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pipeline"])
def test_estimator_failures_become_model_runtime_errors(tmp_path: Path, compiled: bool) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(StandardScaler()), compiled=compiled))

    with pytest.raises(ModelRuntimeError, match="failed to predict"):
        runtime.predict([{"size": 3, "colour": "red"}])


def test_unload_frees_the_model(tmp_path: Path) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(StandardScaler())))

    runtime.unload()

    assert not runtime.ready
    assert not runtime.runs_inline
    with pytest.raises(ModelRuntimeError, match="not loaded"):
        runtime.predict([SCHEMA.example])
    runtime.load()
    assert runtime.ready and not runtime.runs_inline


def test_corrupt_artifact_fails_to_load(tmp_path: Path) -> None:
    manifest, model_dir = save_model(tmp_path, fitted_pipeline(StandardScaler()))
    (model_dir / "model.joblib").write_bytes(b"not a joblib file")
    runtime = SklearnRuntime(manifest, model_dir)

    with pytest.raises(ModelRuntimeError, match="failed to load"):
        runtime.load()
    assert not runtime.ready


# --- compiled forms written here ---------------------------------------------------------------


@pytest.mark.parametrize(
    "build", [lambda: fitted_pipeline(StandardScaler()), fitted_booster], ids=["linear", "tree"]
)
def test_compiled_model_predicts_as_its_pipeline(tmp_path: Path, build: object) -> None:
    pipeline = build()
    manifest, model_dir = save_model(tmp_path, pipeline, compiled=True)
    # The compiled form is all the runtime reads: the pickle is not even opened.
    (model_dir / "model.joblib").write_bytes(b"not a joblib file")
    runtime = loaded(manifest, model_dir)
    frame, _ = synthetic_data(80, seed=1)

    predictions = runtime.predict(frame.to_dict("records"))

    assert runtime.runs_inline and runtime.uses_fast_path
    expected = pipeline.predict_proba(frame)
    assert np.allclose(
        [[p.probabilities["no"], p.probabilities["yes"]] for p in predictions],
        expected,
        rtol=1e-9,
        atol=1e-12,
    )
    assert [p.label for p in predictions] == np.where(expected[:, 1] >= 0.5, "yes", "no").tolist()


def test_large_tree_ensemble_runs_in_the_thread_pool(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, model_dir = save_model(tmp_path, fitted_booster(), compiled=True)
    inline = loaded(manifest, model_dir)
    monkeypatch.setattr(ml.sklearn_runtime, "INLINE_MAX_SPLITS", 10)

    pooled = loaded(manifest, model_dir)

    assert inline.runs_inline and not pooled.runs_inline
    assert pooled.predict([SCHEMA.example]) == inline.predict([SCHEMA.example])


def test_compiled_form_with_other_labels_is_refused(tmp_path: Path) -> None:
    manifest, model_dir = save_model(
        tmp_path, fitted_booster(), labels=["maybe", "yes"], compiled=True
    )
    runtime = SklearnRuntime(manifest, model_dir)

    with pytest.raises(ModelRuntimeError, match="manifest promises"):
        runtime.load()
    assert not runtime.ready


def test_compiled_form_reading_other_features_is_refused(tmp_path: Path) -> None:
    color_as_number = TabularInput(
        features=[
            SCHEMA.features[0],
            NumericFeature(name="color", type="number"),
            SCHEMA.features[2],
        ],
        example={"size": 10, "color": 1.0, "weight": 2.5},
    )
    manifest, model_dir = save_model(
        tmp_path, fitted_pipeline(StandardScaler()), schema=color_as_number, compiled=True
    )

    with pytest.raises(ModelRuntimeError, match="compiled form reads 'color' as a category"):
        SklearnRuntime(manifest, model_dir).load()


def test_broken_compiled_forms_fail_to_load(tmp_path: Path) -> None:
    manifest, model_dir = save_model(tmp_path, fitted_pipeline(StandardScaler()), compiled=True)
    assert manifest.compiled is not None
    other_kind = manifest.model_copy(
        update={
            "compiled": manifest.compiled.model_copy(update={"kind": "tree-ensemble"}),
        }
    )

    with pytest.raises(ModelRuntimeError, match="failed to load"):
        SklearnRuntime(other_kind, model_dir).load()
    (model_dir / "model.compiled.json").write_text("{not json")
    with pytest.raises(ModelRuntimeError, match="failed to load"):
        SklearnRuntime(manifest, model_dir).load()


def test_unload_frees_a_compiled_model(tmp_path: Path) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_booster(), compiled=True))

    runtime.unload()

    assert not runtime.ready and not runtime.runs_inline
    with pytest.raises(ModelRuntimeError, match="not loaded"):
        runtime.predict([SCHEMA.example])
    runtime.load()
    assert runtime.ready and runtime.runs_inline
