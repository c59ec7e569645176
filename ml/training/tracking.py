"""MLflow tracking of a training run, when ``MLFLOW_TRACKING_URI`` is set.

Each model a training script writes becomes one MLflow run in the experiment of its task: the
manifest's training parameters (flattened), its held-out and cross-validation metrics, the
data it was trained on (tags, and ``log_input`` of the frames), the manifest itself, and the
model, registered under the model's name. Without ``MLFLOW_TRACKING_URI`` nothing here runs
and mlflow is not imported (it takes seconds).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ml.manifest import MANIFEST_FILENAME, ModelManifest

logger = logging.getLogger(__name__)

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
MODEL_ARTIFACT_PATH = "model"
# MLflow keeps a param value up to 6,000 characters; a searched grid can be longer.
_MAX_PARAM_CHARS = 6000

ModelLogger = Callable[[str], str]
"""Logs the model into the active run, registered under the name given; the version made."""


@dataclass(frozen=True)
class TrackedModel:
    run_id: str
    registered_version: str


def tracking_enabled() -> bool:
    return bool(os.environ.get(TRACKING_URI_VARIABLE))


def track_training(
    manifest: ModelManifest,
    model_dir: Path,
    log_model: ModelLogger,
    inputs: Mapping[str, pd.DataFrame] | None = None,
    extra_metrics: Mapping[str, float] | None = None,
) -> TrackedModel:
    """Log the run that produced ``manifest`` (written in ``model_dir``) and register its model.

    ``inputs`` maps a context (``training``, ``evaluation``) to the rows used in it;
    ``extra_metrics`` are figures of other evaluations than the headline's (named so).
    """
    import mlflow

    experiment_id = _experiment_id(manifest.task)
    with mlflow.start_run(experiment_id=experiment_id, run_name=manifest.ref) as run:
        mlflow.log_params(flat_params(manifest.training.parameters))
        mlflow.log_metrics({**run_metrics(manifest), **(extra_metrics or {})})
        mlflow.set_tags(data_tags(manifest))
        for context, frame in (inputs or {}).items():
            mlflow.log_input(_frame_dataset(manifest, frame, context), context=context)
        mlflow.log_artifact(str(model_dir / MANIFEST_FILENAME))
        version = log_model(manifest.name)
    tracked = TrackedModel(run_id=run.info.run_id, registered_version=version)
    logger.info(
        "%s: MLflow run %s, registered as %s version %s",
        manifest.ref,
        tracked.run_id,
        manifest.name,
        tracked.registered_version,
    )
    return tracked


def _experiment_id(name: str) -> str:
    """The experiment of this name, made if missing; unlike ``mlflow.set_experiment``, it
    leaves no active experiment behind in the process."""
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None else client.create_experiment(name)


def flat_params(parameters: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested training parameters as MLflow params: dotted keys, lists as JSON."""
    flat: dict[str, str] = {}
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[name] = text[:_MAX_PARAM_CHARS]
    return flat


def run_metrics(manifest: ModelManifest) -> dict[str, float]:
    """The headline (held-out) metrics as they are, the cross-validation ones as ``cv_*``."""
    cross_validation = manifest.training.cross_validation
    return {
        **{f"cv_{name}": value for name, value in cross_validation.items()},
        **manifest.metrics,
    }


def data_tags(manifest: ModelManifest) -> dict[str, str]:
    """The data reference: its source and sha256, and the stored version when there is one."""
    data = manifest.training.data
    tags = {"data.source": data.source, "data.sha256": data.sha256}
    if data.rows is not None:
        tags["data.rows"] = str(data.rows)
    if data.dataset is not None:
        tags.update(
            {
                "dataset.name": data.dataset.name,
                "dataset.version": str(data.dataset.version),
                "dataset.sha256": data.dataset.sha256,
                "dataset.split": data.dataset.split,
            }
        )
    return tags


def _frame_dataset(manifest: ModelManifest, frame: pd.DataFrame, context: str) -> Any:
    from mlflow.data.pandas_dataset import from_pandas

    dataset = manifest.training.data.dataset
    stored = f"{dataset.name}@{dataset.version}" if dataset is not None else manifest.task
    return from_pandas(frame, name=f"{stored}/{context}")


def sklearn_model(pipeline: Any, example: pd.DataFrame) -> ModelLogger:
    """Logs a fitted scikit-learn pipeline in the skops format, with its signature."""

    def log(registered_model_name: str) -> str:
        import mlflow.sklearn
        import sklearn
        import skops.io
        from mlflow.models import infer_signature

        # skops loads only the types it is told to trust: those of this very pipeline.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
        info = mlflow.sklearn.log_model(
            pipeline,
            name=MODEL_ARTIFACT_PATH,
            registered_model_name=registered_model_name,
            serialization_format="skops",
            skops_trusted_types=trusted,
            signature=infer_signature(example, pipeline.predict(example)),
            # Named, so that MLflow does not infer them by importing the model (seconds).
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
        return str(info.registered_model_version)

    return log


def model_files(model_dir: Path) -> ModelLogger:
    """Logs the model's folder as the store holds it, and registers that.

    For the audio models, which need this project's feature code to run: MLflow keeps the
    files (artifact, manifest) and their version, the model store serves them.
    """

    def log(registered_model_name: str) -> str:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        mlflow.log_artifacts(str(model_dir), MODEL_ARTIFACT_PATH)
        run = mlflow.active_run()
        assert run is not None
        client = mlflow.MlflowClient()
        try:
            client.create_registered_model(registered_model_name)
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        # Not ``mlflow.register_model``: MLflow 3 registers logged models only, and a folder
        # of files is none; a model version may still point at a run's artifacts.
        version = client.create_model_version(
            registered_model_name,
            source=mlflow.get_artifact_uri(MODEL_ARTIFACT_PATH),
            run_id=run.info.run_id,
        )
        return str(version.version)

    return log
