"""The sklearn runtime: real committed models, and small pipelines fitted in tmp_path."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from ml.errors import ModelRuntimeError
from ml.manifest import (
    AudioInput,
    CategoricalFeature,
    ModelManifest,
    NumericFeature,
    OutputSchema,
    TabularInput,
    Training,
    TrainingData,
    read_manifest,
    write_manifest,
)
from ml.runtime import Prediction, runtime_class
from ml.sklearn_runtime import SklearnRuntime
from ml.tabular import TabularValidator

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
HELDOUT_CSV = MODELS_DIR / "_evaluation" / "employee-attrition" / "heldout.csv"

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
    frame = pd.DataFrame({
        "size": rng.integers(0, 100, rows),
        "color": rng.choice(["blue", "green", "red"], rows),
        "weight": rng.normal(50.0, 20.0, rows),
    })
    score = 0.04 * frame["size"] - 0.02 * frame["weight"] + (frame["color"] == "red") * 1.5
    return frame, np.where(score + rng.normal(0, 1, rows) > 1.0, "yes", "no")


def fitted_pipeline(scaler: object) -> Pipeline:
    pipeline = Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", scaler, ["size", "weight"]),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ])),
        ("classifier", LogisticRegression()),
    ])
    return pipeline.fit(*synthetic_data())


def save_model(
    tmp_path: Path, pipeline: object, labels: list[str] | None = None,
    threshold: float | None = 0.5, schema: TabularInput | AudioInput = SCHEMA,
) -> tuple[ModelManifest, Path]:
    """Write the artifact and its manifest as the training scripts do."""
    model_dir = tmp_path / "toy" / "1"
    model_dir.mkdir(parents=True)
    joblib.dump(pipeline, model_dir / "model.joblib", compress=3)
    manifest = ModelManifest(
        name="toy", version="1", task="toy-task", framework="sklearn", artifact="model.joblib",
        sha256=hashlib.sha256((model_dir / "model.joblib").read_bytes()).hexdigest(),
        input=schema,
        output=OutputSchema(
            labels=labels or ["no", "yes"], positive_label="yes", decision_threshold=threshold,
        ),
        training=Training(data=TrainingData(source="synthetic", sha256="0" * 64), code="tests"),
        created_at=datetime.now(UTC),
    )
    write_manifest(manifest, model_dir)
    return read_manifest(model_dir / "manifest.json"), model_dir


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


def committed(model: str) -> SklearnRuntime:
    model_dir = MODELS_DIR / model / "1"
    return loaded(read_manifest(model_dir / "manifest.json"), model_dir)


@pytest.mark.parametrize(("model", "inline"), [("attrition-logreg", True),
                                               ("attrition-gbm", False)])
def test_committed_model_reproduces_its_heldout_evaluation(
    heldout: pd.DataFrame, model: str, inline: bool,
) -> None:
    runtime = committed(model)
    rows = TabularValidator(runtime.schema).validate(
        heldout.drop(columns=["Attrition"]).to_dict("records"), field_prefix="instances",
    )

    predictions = runtime.predict(rows)

    assert runtime.ready
    assert runtime.runs_inline is inline
    assert runtime.uses_fast_path is inline
    labels = runtime.manifest.output.labels
    matrix = pd.crosstab(heldout["Attrition"], [p.label for p in predictions])
    matrix = matrix.reindex(index=labels, columns=labels, fill_value=0)
    assert matrix.to_numpy().tolist() == runtime.manifest.evaluations[0].confusion_matrix


def test_committed_logreg_fast_path_equals_the_pipeline(heldout: pd.DataFrame) -> None:
    runtime = committed("attrition-logreg")
    features = heldout.drop(columns=["Attrition"])
    pipeline = joblib.load(runtime.artifact_path)
    rows = TabularValidator(runtime.schema).validate(features.to_dict("records"), "instances")

    fast = [p.probabilities["Yes"] for p in runtime.predict(rows)]

    assert np.allclose(fast, pipeline.predict_proba(features)[:, 1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model", ["attrition-logreg", "attrition-gbm"])
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


def test_linear_pipeline_runs_inline_and_equals_predict_proba(tmp_path: Path) -> None:
    pipeline = fitted_pipeline(StandardScaler())
    runtime = loaded(*save_model(tmp_path, pipeline))
    frame, _ = synthetic_data(50, seed=1)

    predictions = runtime.predict(frame.to_dict("records"))

    assert runtime.runs_inline
    expected = pipeline.predict_proba(frame)
    assert np.allclose([[p.probabilities["no"], p.probabilities["yes"]] for p in predictions],
                       expected, rtol=1e-9, atol=1e-12)
    assert [p.label for p in predictions] == np.where(expected[:, 1] >= 0.5, "yes", "no").tolist()


def test_other_pipelines_use_predict_proba_on_one_batch(tmp_path: Path) -> None:
    pipeline = fitted_pipeline(MinMaxScaler())
    runtime = loaded(*save_model(tmp_path, pipeline))
    frame, _ = synthetic_data(50, seed=1)
    # Validated rows are dicts in schema order; the runtime must not depend on key order.
    rows = [dict(reversed(list(row.items()))) for row in frame.to_dict("records")]

    predictions = runtime.predict(rows)

    assert not runtime.runs_inline
    expected = pipeline.predict_proba(frame)
    assert [p.probabilities["yes"] for p in predictions] == expected[:, 1].tolist()
    assert runtime.predict([]) == []


def test_manifest_label_order_is_kept(tmp_path: Path) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(StandardScaler()),
                                 labels=["yes", "no"]))

    (prediction,) = runtime.predict([SCHEMA.example])

    assert list(prediction.probabilities) == ["yes", "no"]


@pytest.mark.parametrize(("threshold", "label"), [(0.0, "yes"), (1.0, "no")])
def test_threshold_decides_the_label(tmp_path: Path, threshold: float, label: str) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(StandardScaler()),
                                 threshold=threshold))

    assert [p.label for p in runtime.predict([SCHEMA.example] * 3)] == [label] * 3


def test_without_threshold_the_likeliest_label_wins(tmp_path: Path) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(MinMaxScaler()), threshold=None))
    frame, _ = synthetic_data(30, seed=2)

    predictions = runtime.predict(frame.to_dict("records"))

    assert [max(p.probabilities, key=p.probabilities.get) for p in predictions] == [
        p.label for p in predictions
    ]


def test_labels_that_disagree_with_the_artifact_are_refused(tmp_path: Path) -> None:
    manifest, model_dir = save_model(tmp_path, fitted_pipeline(StandardScaler()),
                                     labels=["maybe", "yes"])
    runtime = SklearnRuntime(manifest, model_dir)

    with pytest.raises(ModelRuntimeError, match="manifest promises"):
        runtime.load()
    assert not runtime.ready


def test_audio_manifest_is_refused(tmp_path: Path) -> None:
    audio = AudioInput(sample_rate=16_000, clip_seconds=1.0, formats=["wav"])

    with pytest.raises(ModelRuntimeError, match="tabular"):
        SklearnRuntime(*save_model(tmp_path, fitted_pipeline(StandardScaler()), schema=audio))


@pytest.mark.parametrize("scaler", [StandardScaler(), MinMaxScaler()], ids=["fast", "pipeline"])
def test_estimator_failures_become_model_runtime_errors(tmp_path: Path, scaler: object) -> None:
    runtime = loaded(*save_model(tmp_path, fitted_pipeline(scaler)))

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
    assert runtime.ready and runtime.runs_inline


def test_corrupt_artifact_fails_to_load(tmp_path: Path) -> None:
    manifest, model_dir = save_model(tmp_path, fitted_pipeline(StandardScaler()))
    (model_dir / "model.joblib").write_bytes(b"not a joblib file")
    runtime = SklearnRuntime(manifest, model_dir)

    with pytest.raises(ModelRuntimeError, match="failed to load"):
        runtime.load()
    assert not runtime.ready
