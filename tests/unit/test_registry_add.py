"""``python -m registry add``: a user's model packaged, proven and sealed, or refused whole."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml.drift import read_profile
from ml.manifest import read_manifest
from ml.onnx_runtime import OnnxRuntime
from ml.packaging.heldout import BINARY_METRICS
from registry.__main__ import main
from registry.factories import framework_runtimes
from registry.registry import ModelRegistry
from tests.byom import (
    TARGET,
    attrition_sample,
    matrix_model,
    random_forest_pipeline,
    request_rows,
)
from tests.helpers import HELDOUT_CSV, MODELS_DIR, ROOT, copy_model, heldout_rows

pytestmark = pytest.mark.slow

OPSETS = {"": 21, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class UserModel:
    pipeline: Pipeline
    artifact: Path
    sample: Path
    frame: pd.DataFrame


@pytest.fixture(scope="module")
def user_model(tmp_path_factory: pytest.TempPathFactory) -> UserModel:
    """The user's forest, fitted on two thirds of the sample and saved with joblib."""
    folder = tmp_path_factory.mktemp("user")
    frame = attrition_sample()
    fit_rows = frame.iloc[: len(frame) * 2 // 3]
    pipeline = random_forest_pipeline(fit_rows.drop(columns=TARGET), fit_rows[TARGET])
    joblib.dump(pipeline, folder / "forest.joblib")
    frame.to_csv(folder / "sample.csv", index=False)
    return UserModel(pipeline, folder / "forest.joblib", folder / "sample.csv", frame)


def add(store: Path, name: str, *arguments: str | Path) -> int:
    return main(["add", name, *map(str, arguments), "--models-dir", str(store)])


def add_fitted(store: Path, name: str, pipeline: Pipeline, frame: pd.DataFrame) -> int:
    """Save ``pipeline`` (fitted on ``frame``) and ``frame`` beside ``store``, then add them."""
    pipeline.fit(frame.drop(columns=TARGET), frame[TARGET])
    joblib.dump(pipeline, store.parent / f"{name}.joblib")
    frame.to_csv(store.parent / f"{name}.csv", index=False)
    return add(
        store, name, "--artifact", store.parent / f"{name}.joblib",
        "--sample", store.parent / f"{name}.csv",
    )  # fmt: skip


def store_files(store: Path) -> list[str]:
    return (
        sorted(str(path.relative_to(store)) for path in store.rglob("*")) if store.exists() else []
    )


def test_forest_pipeline_is_served_by_onnx_runtime_proven_on_the_sample(
    user_model: UserModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "models"
    code = add(
        store, "my-forest", "--artifact", user_model.artifact, "--sample", user_model.sample,
        "--target", TARGET, "--description", "my forest",
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == "my-forest@1"
    assert "served by ONNX Runtime (double precision)" in err
    manifest = read_manifest(store / "my-forest" / "1" / "manifest.json")
    assert (manifest.framework, manifest.artifact, manifest.task) == (
        "onnx",
        "model.onnx",
        "my-forest",
    )
    conversion = manifest.conversion
    assert conversion is not None and conversion.source_artifact == "model.joblib"
    assert conversion.same_labels and conversion.max_probability_difference <= 1e-5
    assert (conversion.precision, conversion.rows) == ("double", len(user_model.frame))
    # The schema, its nullability, the example and the metrics come from the sample.
    age = next(feature for feature in manifest.input.features if feature.name == "Age")  # type: ignore[union-attr]
    assert age.nullable and age.type == "number"
    assert manifest.input.example["Age"] is None  # type: ignore[union-attr]
    assert set(manifest.metrics) == {"roc_auc", "f1", "precision", "recall", "accuracy"}
    assert manifest.evaluations[0].dataset == "_evaluation/my-forest/my-forest-1.csv"
    assert (store / manifest.evaluations[0].dataset).is_file()
    assert manifest.description == "my forest"
    assert manifest.training.data.rows == len(user_model.frame)
    # Every file is hashed and the manifest sealed: validate passes on what add wrote.
    assert main(["--models-dir", str(store), "validate"]) == 0
    assert "0 problems" in capsys.readouterr().out


def test_the_served_onnx_model_equals_predict_proba(user_model: UserModel, tmp_path: Path) -> None:
    store = tmp_path / "models"
    assert (
        add(store, "forest", "--artifact", user_model.artifact, "--sample", user_model.sample) == 0
    )
    manifest = read_manifest(store / "forest" / "1" / "manifest.json")
    runtime = OnnxRuntime(manifest, store / "forest" / "1")
    runtime.load()
    features = user_model.frame.drop(columns=TARGET)
    assert runtime.tabular_validator is not None
    rows = runtime.tabular_validator.validate(request_rows(features), "rows")
    served = runtime.predict(rows)  # one batch: one run of the session
    expected = user_model.pipeline.predict_proba(features)
    actual = np.array([[p.probabilities[label] for label in ("No", "Yes")] for p in served])
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert [p.label for p in served] == [["No", "Yes"][i] for i in expected.argmax(axis=1)]
    assert manifest.evaluations == [] and manifest.metrics == {}  # no --target, no metrics


def test_versions_follow_the_highest_and_keep_the_task(
    user_model: UserModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "models"
    (store / "forest" / "7").mkdir(parents=True)  # an integer folder counts, even empty
    sources = ["--artifact", user_model.artifact, "--sample", user_model.sample]
    assert add(store, "forest", *sources, "--task", "churn") == 0
    assert capsys.readouterr().out.strip() == "forest@8"
    assert add(store, "forest", *sources) == 0
    assert capsys.readouterr().out.strip() == "forest@9"
    assert read_manifest(store / "forest" / "9" / "manifest.json").task == "churn"


def test_a_linear_pipeline_keeps_its_exact_compiled_form(
    user_model: UserModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = user_model.frame.dropna()
    features = frame.drop(columns=TARGET)
    numeric = features.select_dtypes("number").columns.tolist()
    categorical = [column for column in features.columns if column not in numeric]
    preprocess = ColumnTransformer(
        [
            ("n", StandardScaler(), numeric),
            ("c", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    pipeline = Pipeline([("p", preprocess), ("m", LogisticRegression(max_iter=2000))])
    store = tmp_path / "models"
    assert add_fitted(store, "linear", pipeline, frame) == 0
    assert "compiled linear-logistic form" in capsys.readouterr().err
    manifest = read_manifest(store / "linear" / "1" / "manifest.json")
    assert manifest.framework == "sklearn" and manifest.compiled is not None
    assert sorted(path.name for path in (store / "linear" / "1").iterdir()) == [
        "manifest.json", "model.compiled.json", "model.joblib", "reference_profile.json",
    ]  # fmt: skip
    # The drift reference: every feature of the sample, and the labels it was predicted.
    assert manifest.reference_profile is not None
    profile = read_profile(store / "linear" / "1" / "reference_profile.json",
                           manifest.reference_profile.sha256)  # fmt: skip
    assert (profile.rows, list(profile.features)) == (len(frame), list(frame.drop(columns=TARGET)))
    assert set(profile.labels) <= {"No", "Yes"} and sum(profile.labels.values()) == 1


def test_a_pipeline_that_does_not_convert_keeps_the_pickle_with_a_warning(
    user_model: UserModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = user_model.frame.dropna()[["Age", "MonthlyIncome", TARGET]]
    # A Python function: skl2onnx cannot convert it.
    pipeline = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression())
    store = tmp_path / "models"
    assert add_fitted(store, "logged", pipeline, frame) == 0
    err = capsys.readouterr().err
    assert "warning: logged@1: no fast path" in err and "about 5 ms a row" in err
    manifest = read_manifest(store / "logged" / "1" / "manifest.json")
    assert (manifest.framework, manifest.compiled, manifest.conversion) == ("sklearn", None, None)
    assert sorted(path.name for path in (store / "logged" / "1").iterdir()) == [
        "manifest.json", "model.joblib", "reference_profile.json",
    ]  # fmt: skip


def test_an_onnx_file_is_served_as_given(
    user_model: UserModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = user_model.frame.drop(columns=TARGET)
    # skl2onnx's defaults, ZipMap included: one input per column, labels in the graph.
    numeric = set(features.select_dtypes("number").columns)
    types = [
        (name, FloatTensorType([None, 1]) if name in numeric else StringTensorType([None, 1]))
        for name in features.columns
    ]
    model = to_onnx(user_model.pipeline, initial_types=types, target_opset=OPSETS)
    (tmp_path / "forest.onnx").write_bytes(model.SerializeToString())
    store = tmp_path / "models"
    code = add(
        store, "given", "--artifact", tmp_path / "forest.onnx", "--sample", user_model.sample,
        "--target", TARGET,
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(store / "given" / "1" / "manifest.json")
    assert (manifest.framework, manifest.conversion) == ("onnx", None)
    assert manifest.output.labels == ["No", "Yes"] and "roc_auc" in manifest.metrics
    assert main(["--models-dir", str(store), "validate"]) == 0


def test_an_onnx_file_without_labels_needs_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix_model(tmp_path / "matrix.onnx", 2)
    pd.DataFrame({"a": [0.5, 1.0, 2.0], "b": [1.0, 0.0, 0.25]}).to_csv(
        tmp_path / "s.csv", index=False
    )
    store = tmp_path / "models"
    sources = ["--artifact", tmp_path / "matrix.onnx", "--sample", tmp_path / "s.csv"]
    assert add(store, "matrix", *sources) == 2
    assert "pass --labels" in capsys.readouterr().err and store_files(store) == []
    assert add(store, "matrix", *sources, "--labels", "low,high") == 0
    manifest = read_manifest(store / "matrix" / "1" / "manifest.json")
    runtime = OnnxRuntime(manifest, store / "matrix" / "1")
    runtime.load()
    (prediction,) = runtime.predict([{"a": 2.0, "b": 0.0}])
    assert prediction.label == "low" and prediction.probabilities["low"] > 0.9


@pytest.fixture
def bad_inputs(tmp_path: Path, user_model: UserModel) -> dict[str, Path]:
    """Artifacts and samples that ``registry add`` must refuse."""
    paths = {
        "missing": tmp_path / "nope.joblib",
        "broken": tmp_path / "broken.joblib",
        "text": tmp_path / "notes.txt",
        "regressor": tmp_path / "regressor.joblib",
        "narrow": tmp_path / "narrow.csv",
        "wrong": tmp_path / "wrong.csv",
    }
    paths["broken"].write_bytes(b"not a pickle")
    paths["text"].write_text("a model, honest")
    joblib.dump(LinearRegression().fit(pd.DataFrame({"x": [0.0, 1.0]}), [0, 1]), paths["regressor"])
    user_model.frame.drop(columns=["Age"]).to_csv(paths["narrow"], index=False)
    user_model.frame.assign(MonthlyIncome="a lot").to_csv(paths["wrong"], index=False)
    return paths


# Each case: the arguments that change (a name of ``bad_inputs``, else the value itself), and
# what the message says.
REFUSALS = {
    "missing artifact": ({"--artifact": "missing"}, "does not exist"),
    "broken artifact": ({"--artifact": "broken"}, "cannot read"),
    "unsupported artifact": ({"--artifact": "text"}, "not a supported model"),
    "no predict_proba": ({"--artifact": "regressor"}, "has no predict_proba"),
    "sample without a column": ({"--sample": "narrow"}, "lacks the model's input columns"),
    "predict fails on the sample": ({"--sample": "wrong"}, "the model fails on the sample"),
    "missing target": ({"--target": "Churn"}, "has no target column 'Churn'"),
    "name of another task": ({"--task": "other"}, "is taken by a model of task"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_exits_2_and_writes_nothing(
    case: str,
    user_model: UserModel,
    bad_inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "models"
    assert (
        add(store, "taken", "--artifact", user_model.artifact, "--sample", user_model.sample) == 0
    )
    before = store_files(store)
    changes, message = REFUSALS[case]
    arguments: dict[str, str | Path] = {
        "--artifact": user_model.artifact,
        "--sample": user_model.sample,
        **{flag: bad_inputs.get(value, value) for flag, value in changes.items()},
    }
    capsys.readouterr()
    name = "taken" if case == "name of another task" else "fresh"
    assert add(store, name, *[part for pair in arguments.items() for part in pair]) == 2
    assert message in capsys.readouterr().err
    assert store_files(store) == before


def test_a_bad_name_is_refused_before_anything_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "models"
    assert add(store, "My Model", "--artifact", "x.joblib", "--sample", "x.csv") == 2
    assert "invalid model name" in capsys.readouterr().err
    assert not store.exists()


def test_registry_add_as_a_command(user_model: UserModel, tmp_path: Path) -> None:
    store = tmp_path / "models"
    completed = subprocess.run(
        [
            sys.executable, "-m", "registry", "--models-dir", str(store), "add", "forest",
            "--artifact", str(user_model.artifact), "--sample", str(user_model.sample),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "forest@1\n"
    assert json.loads((store / "forest" / "1" / "manifest.json").read_text())["framework"] == "onnx"


def served_labels(store: Path, refs: list[str], rows: list[dict[str, object]]) -> list[list[str]]:
    """The labels each of ``refs`` answers on ``rows``, loaded through the registry as served."""
    registry = ModelRegistry.from_dir(store, framework_runtimes("cpu"))

    async def labels(ref: str) -> list[str]:
        async with registry.serving(registry.resolve(ref)) as serving:
            runtime = serving.runtime
            assert runtime is not None and runtime.tabular_validator is not None
            return [p.label for p in runtime.predict(runtime.tabular_validator.validate(rows))]

    try:
        return [asyncio.run(labels(ref)) for ref in refs]
    finally:
        registry.loader.unload_all()


def test_a_decision_threshold_packages_the_bundled_model_as_it_was_trained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "models"
    copy_model(store, "attrition-logreg")
    bundled = read_manifest(store / "attrition-logreg" / "1" / "manifest.json")
    threshold = bundled.output.decision_threshold
    assert threshold is not None and threshold != 0.5  # tuned by the training
    sources = [
        "--artifact", MODELS_DIR / "attrition-logreg" / "1" / "model.joblib",
        "--sample", HELDOUT_CSV, "--target", "Attrition",
    ]  # fmt: skip
    assert add(store, "attrition-logreg", *sources, "--decision-threshold", repr(threshold)) == 0
    assert add(store, "attrition-logreg", *sources) == 0  # the default threshold, as before
    out, err = capsys.readouterr()
    assert out.split() == ["attrition-logreg@2", "attrition-logreg@3"], err
    tuned = read_manifest(store / "attrition-logreg" / "2" / "manifest.json")
    default = read_manifest(store / "attrition-logreg" / "3" / "manifest.json")
    assert tuned.output == bundled.output  # the threshold as the training wrote it
    assert default.output.decision_threshold is None
    # Measured on the rows v1 was measured on, at its threshold: v1's counts, and its figures
    # (the training's scikit-learn formulas and ml.evaluation's may differ in the last bit).
    assert tuned.evaluations[0].confusion_matrix == bundled.evaluations[0].confusion_matrix
    assert tuned.metrics == pytest.approx(
        {name: bundled.metrics[name] for name in BINARY_METRICS}, rel=1e-12
    )
    assert default.metrics["roc_auc"] == bundled.metrics["roc_auc"]
    assert default.metrics["f1"] != bundled.metrics["f1"]  # the defect the option mends
    # Served, v2 answers every held-out row as v1 does; v3 does not.
    rows = heldout_rows()
    v1, v2, v3 = served_labels(store, [f"attrition-logreg@{v}" for v in "123"], rows)
    assert v2 == v1 and v3 != v1
    assert main(["--models-dir", str(store), "validate"]) == 0  # sealed with the threshold


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan"])
def test_a_decision_threshold_outside_0_1_is_refused(
    value: str, user_model: UserModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "models"
    sources = ["--artifact", user_model.artifact, "--sample", user_model.sample]
    assert add(store, "forest", *sources, "--decision-threshold", value) == 2
    assert "invalid --decision-threshold" in capsys.readouterr().err
    assert store_files(store) == []
    assert math.isnan(float(value)) or not 0 < float(value) < 1


def test_a_decision_threshold_that_is_not_a_number_is_refused(
    user_model: UserModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "models"
    sources = ["--artifact", user_model.artifact, "--sample", user_model.sample]
    with pytest.raises(SystemExit) as exited:
        add(store, "forest", *sources, "--decision-threshold", "high")
    assert exited.value.code == 2
    assert "--decision-threshold" in capsys.readouterr().err
    assert store_files(store) == []


def test_a_decision_threshold_needs_a_binary_classifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.DataFrame(
        {"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "kind": ["x", "x", "y", "y", "z", "z"]}
    )
    joblib.dump(LogisticRegression().fit(frame[["a"]], frame["kind"]), tmp_path / "three.joblib")
    frame.to_csv(tmp_path / "three.csv", index=False)
    store = tmp_path / "models"
    sources = ["--artifact", tmp_path / "three.joblib", "--sample", tmp_path / "three.csv"]
    assert add(store, "three", *sources, "--target", "kind", "--decision-threshold", "0.4") == 2
    assert "binary classifier only" in capsys.readouterr().err
    assert store_files(store) == []
    assert add(store, "three", *sources, "--target", "kind") == 0  # without it: packaged
