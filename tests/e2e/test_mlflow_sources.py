"""MLflow sources for ``registry add``: model directories, and ``models:/`` from a real server.

The server is ``mlflow server`` started here (SQLite backend, artifacts proxied from a folder in
tmp_path), with two versions of one model registered through MLflow's own client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import Model
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.packaging.errors import PackagingError
from ml.packaging.mlflow_source import (
    is_mlflow_source,
    load_mlflow_estimator,
    load_mlflow_model,
)
from registry.__main__ import main as registry_cli
from tests.live_server import free_port
from tests.mlflow_server import running_mlflow_server

# Importing mlflow.pyfunc (which save_model and log_model do; loading does not) warns about
# MLflow's own type hints, once.
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")

# MLflow infers a model's pip requirements by importing it in a subprocess (seconds); naming
# them skips that.
REQUIREMENTS = ["scikit-learn"]
# skops refuses, on save as on load, any type outside its allow-list: the one-hot encoder's
# dtype is one. MLflow keeps the list in MLmodel, and loads with it.
SKOPS_TRUSTED = ["numpy.dtype"]


def churn_rows(count: int = 120) -> pd.DataFrame:
    """A small churn table: numbers with gaps, a category, and the target ``churned``."""
    rng = np.random.default_rng(7)
    tenure = rng.integers(1, 72, count).astype(float)
    tenure[::11] = np.nan
    rows = pd.DataFrame(
        {
            "tenure": tenure,
            "charges": rng.uniform(20, 120, count).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], count),
        }
    )
    rows["churned"] = np.where((rows["charges"] > 70) & (rows["plan"] != "pro"), "yes", "no")
    return rows


def fit_pipeline(rows: pd.DataFrame, strength: float = 1.0) -> Pipeline:
    """Imputer and scaler for the numbers, one-hot for the plan, logistic regression."""
    features = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), ["tenure", "charges"]),
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]),
    )
    pipeline = make_pipeline(features, LogisticRegression(C=strength))
    return pipeline.fit(rows.drop(columns="churned"), rows["churned"])


def save_model_directory(directory: Path, model: Pipeline, serialization_format: str) -> Path:
    mlflow.sklearn.save_model(
        model,
        directory,
        serialization_format=serialization_format,
        skops_trusted_types=SKOPS_TRUSTED if serialization_format == "skops" else None,
        pip_requirements=REQUIREMENTS,
    )
    return directory


def assert_same_model(loaded: object, original: Pipeline, rows: pd.DataFrame) -> None:
    inputs = rows.drop(columns="churned")
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict_proba(inputs), original.predict_proba(inputs))


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return churn_rows()


@pytest.fixture(scope="module")
def pipeline(rows: pd.DataFrame) -> Pipeline:
    return fit_pipeline(rows)


@pytest.mark.parametrize("serialization_format", ["pickle", "cloudpickle", "skops"])
def test_a_model_directory_loads_in_each_serialisation(
    tmp_path: Path, rows: pd.DataFrame, pipeline: Pipeline, serialization_format: str
) -> None:
    directory = save_model_directory(tmp_path / "churn-model", pipeline, serialization_format)

    assert is_mlflow_source(str(directory))
    loaded = load_mlflow_model(str(directory))
    assert_same_model(loaded.estimator, pipeline, rows)
    assert loaded.provenance.serialization_format == serialization_format
    assert loaded.provenance.sklearn_version is not None
    assert serialization_format in loaded.provenance.describe()


def test_a_model_without_the_sklearn_flavor_is_refused_with_its_flavors(tmp_path: Path) -> None:
    directory = tmp_path / "booster"
    directory.mkdir()
    mlmodel = Model()
    mlmodel.add_flavor("xgboost", xgb_version="3.0.0", data="model.ubj")
    mlmodel.add_flavor("python_function", loader_module="mlflow.xgboost")
    mlmodel.save(str(directory / "MLmodel"))

    assert is_mlflow_source(str(directory))
    with pytest.raises(PackagingError, match="flavors: python_function, xgboost"):
        load_mlflow_estimator(str(directory))


def test_a_broken_pickle_is_refused(tmp_path: Path, pipeline: Pipeline) -> None:
    directory = save_model_directory(tmp_path / "churn-model", pipeline, "pickle")
    (directory / "model.pkl").write_bytes(b"not a pickle")

    with pytest.raises(PackagingError, match="cannot load the sklearn flavor"):
        load_mlflow_estimator(str(directory))


def test_what_is_not_an_mlflow_source(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"")
    assert not is_mlflow_source(str(tmp_path))
    assert not is_mlflow_source(str(tmp_path / "model.joblib"))
    assert not is_mlflow_source(str(tmp_path / "missing"))
    with pytest.raises(PackagingError, match="no MLmodel file"):
        load_mlflow_estimator(str(tmp_path))


def test_a_registry_uri_needs_an_alias_or_a_version_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    assert is_mlflow_source("models:/churn/Production")
    with pytest.raises(PackagingError, match="give the model an alias"):
        load_mlflow_estimator("models:/churn/Production")


def test_a_registry_uri_needs_mlflow_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(PackagingError, match="needs MLFLOW_TRACKING_URI: set it"):
        load_mlflow_estimator("models:/churn@champion")


def test_an_unreachable_server_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:secret@127.0.0.1:{free_port()}")
    with pytest.raises(PackagingError, match="cannot reach the MLflow tracking") as error:
        load_mlflow_estimator("models:/churn@champion")
    assert "secret" not in str(error.value)


@dataclass
class TrackingServer:
    url: str
    first: Pipeline
    second: Pipeline
    second_run_id: str


@pytest.fixture(scope="module")
def tracking_server(
    tmp_path_factory: pytest.TempPathFactory, rows: pd.DataFrame
) -> Iterator[TrackingServer]:
    """``mlflow server`` with ``churn`` versions 1 and 2 registered; ``champion`` names 2.

    ``MLFLOW_TRACKING_URI`` names it for as long as it runs.
    """
    with (
        running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("MLFLOW_TRACKING_URI", url)
        first, second = fit_pipeline(rows, strength=0.1), fit_pipeline(rows, strength=10.0)
        run_ids = [_log_and_register(model) for model in (first, second)]
        MlflowClient(tracking_uri=url).set_registered_model_alias("churn", "champion", "2")
        yield TrackingServer(url, first, second, run_ids[1])


def _log_and_register(model: Pipeline) -> str:
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name="churn",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED,
            pip_requirements=REQUIREMENTS,
        )
    run_id: str = run.info.run_id
    return run_id


@pytest.mark.e2e
@pytest.mark.slow
def test_an_alias_loads_the_version_it_points_to(
    tracking_server: TrackingServer, rows: pd.DataFrame
) -> None:
    loaded = load_mlflow_model("models:/churn@champion")

    assert_same_model(loaded.estimator, tracking_server.second, rows)
    provenance = loaded.provenance
    assert (provenance.model_name, provenance.model_version, provenance.alias) == (
        "churn",
        "2",
        "champion",
    )
    assert provenance.run_id == tracking_server.second_run_id
    assert provenance.tracking_uri == tracking_server.url
    assert provenance.describe().startswith("MLflow models:/churn@champion (version 2, run ")


@pytest.mark.e2e
@pytest.mark.slow
def test_a_version_number_loads_that_version(
    tracking_server: TrackingServer, rows: pd.DataFrame
) -> None:
    assert_same_model(load_mlflow_estimator("models:/churn/1"), tracking_server.first, rows)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("models:/churn@nobody", "alias nobody not found"),
        ("models:/churn/9", r"version=9\) not found"),
        ("models:/attrition@champion", "name=attrition not found"),
    ],
)
def test_what_the_registry_does_not_hold_is_named(
    tracking_server: TrackingServer, source: str, problem: str
) -> None:
    with pytest.raises(PackagingError, match=problem) as error:
        load_mlflow_estimator(source)
    assert str(error.value).startswith(f"the MLflow tracking server {tracking_server.url}")


def add_churn(store: Path, artifact: str, sample: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``python -m registry add churn`` (in this process: mlflow is imported already); its output.

    Its exit code is asserted to be 0, and ``python -m registry validate`` then passes.
    """
    arguments = ["add", "churn", "--artifact", artifact, "--sample", str(sample)]
    exit_code = registry_cli([*arguments, "--target", "churned", "--models-dir", str(store)])
    added = capsys.readouterr()
    assert exit_code == 0, added.err
    assert registry_cli(["--models-dir", str(store), "validate"]) == 0, capsys.readouterr().out
    return added.out


def packaged_manifest(store: Path, model: Pipeline, rows: pd.DataFrame) -> dict[str, Any]:
    """The manifest of ``churn@1``, after checking that the version holds ``model``."""
    version = store / "churn" / "1"
    manifest: dict[str, Any] = json.loads((version / "manifest.json").read_text())
    # The pipeline itself: the artifact, or the reference an ONNX conversion was proven against.
    conversion = manifest.get("conversion") or {"source_artifact": manifest["artifact"]}
    assert_same_model(joblib.load(version / conversion["source_artifact"]), model, rows)
    return manifest


@pytest.mark.e2e
@pytest.mark.slow
def test_registry_add_packages_a_model_directory(
    tmp_path: Path, rows: pd.DataFrame, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = save_model_directory(tmp_path / "churn-model", pipeline, "skops")
    rows.to_csv(sample := tmp_path / "sample.csv", index=False)

    assert add_churn(tmp_path / "models", str(directory), sample, capsys).strip() == "churn@1"

    manifest = packaged_manifest(tmp_path / "models", pipeline, rows)
    assert manifest["description"].startswith(f"Pipeline from MLflow {directory} (model ")
    assert "skops" in manifest["description"]


@pytest.mark.e2e
@pytest.mark.slow
def test_registry_add_packages_the_version_an_alias_names(
    tracking_server: TrackingServer,
    tmp_path: Path,
    rows: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows.to_csv(sample := tmp_path / "sample.csv", index=False)

    added = add_churn(tmp_path / "models", "models:/churn@champion", sample, capsys)

    assert added.strip() == "churn@1"
    manifest = packaged_manifest(tmp_path / "models", tracking_server.second, rows)
    assert "MLflow models:/churn@champion (version 2, run " in manifest["description"]


@pytest.mark.e2e
@pytest.mark.slow
def test_registry_add_refuses_an_unknown_alias_and_writes_nothing(
    tracking_server: TrackingServer,
    tmp_path: Path,
    rows: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows.to_csv(sample := tmp_path / "sample.csv", index=False)
    arguments = ["add", "churn", "--artifact", "models:/churn@nobody", "--sample", str(sample)]

    assert registry_cli([*arguments, "--models-dir", str(tmp_path / "models")]) == 2

    assert "alias nobody not found" in capsys.readouterr().err
    assert not (tmp_path / "models" / "churn").exists()
