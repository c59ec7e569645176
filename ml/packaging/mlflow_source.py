"""MLflow models as ``registry add`` sources: a model directory, or ``models:/`` from a server.

A model directory holds an ``MLmodel`` file; ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION``
name a registered model on the tracking server of ``MLFLOW_TRACKING_URI``. Only the sklearn
flavor is read (pickle, cloudpickle or skops, as its ``serialization_format`` says), through
MLflow's own loader. mlflow is imported on first use only: it takes seconds.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ml.packaging.errors import PackagingError

MLMODEL_FILENAME = "MLmodel"
_REGISTRY_SCHEME = "models:/"
# models:/NAME@ALIAS or models:/NAME/VERSION: the registry's own forms (aliases, not stages).
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
# MLflow retries a failed request 7 times with a growing backoff (minutes in all) and waits
# 120 s for an answer: right for a training job, not for a command someone waits on; and its
# download progress bar would garble the command's output. The user's own values win.
_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@dataclass(frozen=True)
class MlflowProvenance:
    """Where an MLflow model came from, for the manifest (no credentials in it)."""

    source: str
    """The directory or ``models:/`` URI as given."""
    tracking_uri: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    """For ``models:/NAME@ALIAS``: the version the alias pointed to when it was read."""
    alias: str | None = None
    run_id: str | None = None
    model_uuid: str | None = None
    sklearn_version: str | None = None
    serialization_format: str | None = None

    def describe(self) -> str:
        """One line for the manifest, e.g. ``MLflow models:/churn@champion (version 3, ...)``."""
        facts = [
            f"version {self.model_version}" if self.alias and self.model_version else None,
            f"run {self.run_id}" if self.run_id else None,
            f"model {self.model_uuid}" if self.model_uuid else None,
            f"scikit-learn {self.sklearn_version}" if self.sklearn_version else None,
            self.serialization_format,
            f"from {self.tracking_uri}" if self.tracking_uri else None,
        ]
        shown = ", ".join(fact for fact in facts if fact)
        return f"MLflow {self.source}" + (f" ({shown})" if shown else "")


@dataclass(frozen=True)
class MlflowModel:
    estimator: object
    provenance: MlflowProvenance


def is_mlflow_source(source: str) -> bool:
    """True for an MLflow model directory or a ``models:/`` URI (checked further on load)."""
    return source.startswith(_REGISTRY_SCHEME) or (Path(source) / MLMODEL_FILENAME).is_file()


def load_mlflow_estimator(source: str) -> object:
    """The fitted scikit-learn estimator or pipeline of an MLflow source."""
    return load_mlflow_model(source).estimator


def load_mlflow_model(source: str) -> MlflowModel:
    """The estimator of an MLflow source and where it came from; PackagingError else."""
    if source.startswith(_REGISTRY_SCHEME):
        return _load_registered(source)
    if not is_mlflow_source(source):
        raise PackagingError(
            f"{source} is not an MLflow model directory (no {MLMODEL_FILENAME} file in it)"
        )
    return _load_directory(Path(source), MlflowProvenance(source=source))


def _load_directory(path: Path, provenance: MlflowProvenance) -> MlflowModel:
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        mlmodel = Model.load(str(path))
    except (MlflowException, OSError, ValueError) as error:
        raise PackagingError(
            f"cannot read {path / MLMODEL_FILENAME}: {error}; save the model again with "
            "mlflow.sklearn.save_model or log_model"
        ) from error
    flavor: dict[str, Any] | None = mlmodel.flavors.get("sklearn")
    if flavor is None:
        found = ", ".join(sorted(mlmodel.flavors)) or "none"
        raise PackagingError(
            f"the MLflow model {provenance.source} has no sklearn flavor (its flavors: {found}); "
            "registry add reads scikit-learn models: log yours with mlflow.sklearn.log_model, "
            "or pass an ONNX export of it (.onnx) as --artifact"
        )
    try:
        estimator = mlflow.sklearn.load_model(str(path))
    except Exception as error:  # a bad pickle raises anything at all
        raise PackagingError(
            f"cannot load the sklearn flavor of {provenance.source}: "
            f"{type(error).__name__}: {error}"
        ) from error
    return MlflowModel(
        estimator,
        replace(
            provenance,
            run_id=provenance.run_id or mlmodel.run_id,
            model_uuid=mlmodel.model_uuid,
            sklearn_version=flavor.get("sklearn_version"),
            serialization_format=flavor.get("serialization_format", "pickle"),
        ),
    )


def _load_registered(source: str) -> MlflowModel:
    match = _REGISTRY_URI.match(source)
    if match is None:
        raise PackagingError(
            f"{source} is not models:/NAME@ALIAS or models:/NAME/VERSION "
            "(stages are not read: give the model an alias in MLflow and name it)"
        )
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        raise PackagingError(
            f"{source} needs MLFLOW_TRACKING_URI: set it to your tracking server, "
            f"e.g. MLFLOW_TRACKING_URI=http://localhost:5000"
        )
    with _client_defaults():
        import mlflow.artifacts
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        name, alias = match["name"], match["alias"]
        try:
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            if alias is not None:
                registered = client.get_model_version_by_alias(name, alias)
            else:
                registered = client.get_model_version(name, match["version"])
        except MlflowException as error:
            raise _server_problem(source, tracking_uri, error) from error
        provenance = MlflowProvenance(
            source=source,
            tracking_uri=_without_credentials(tracking_uri),
            model_name=name,
            model_version=str(registered.version),
            alias=alias,
            run_id=registered.run_id,
        )
        # The version the alias resolved to, not the alias again: it may move meanwhile.
        resolved = f"{_REGISTRY_SCHEME}{name}/{registered.version}"
        with tempfile.TemporaryDirectory(prefix="mlflow-model-") as download:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=resolved,
                    dst_path=download,
                    tracking_uri=tracking_uri,
                    registry_uri=tracking_uri,
                )
            except MlflowException as error:
                raise _server_problem(resolved, tracking_uri, error) from error
            return _load_directory(Path(local), provenance)


def _server_problem(source: str, tracking_uri: str, error: Exception) -> PackagingError:
    shown = _without_credentials(tracking_uri)
    said = str(error).replace(tracking_uri.rstrip("/"), shown.rstrip("/")).rstrip(".")
    # MLflow wraps a failed connection or a timeout (requests' errors are OSErrors) in its own
    # exception; an answer from the server is an MlflowException with the server's message.
    if isinstance(error.__context__, OSError):
        return PackagingError(
            f"cannot reach the MLflow tracking server {shown} for {source}: {said}; "
            "check MLFLOW_TRACKING_URI and that the server runs"
        )
    return PackagingError(
        f"the MLflow tracking server {shown} could not give {source}: {said}; check the "
        "model's name and its alias or version in the MLflow UI"
    )


@contextmanager
def _client_defaults() -> Iterator[None]:
    """``_CLIENT_DEFAULTS`` where the environment has no value, for the duration of one load."""
    missing = [key for key in _CLIENT_DEFAULTS if key not in os.environ]
    os.environ.update({key: _CLIENT_DEFAULTS[key] for key in missing})
    try:
        yield
    finally:
        for key in missing:
            os.environ.pop(key, None)


def _without_credentials(uri: str) -> str:
    """``uri`` without user, password or query: the manifest is public (GET /models)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
