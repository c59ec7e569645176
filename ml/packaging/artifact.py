"""Reading the model that ``python -m registry add`` packages, whatever form it comes in.

A joblib or pickle file of a fitted scikit-learn classifier (or pipeline), an ``.onnx`` file,
an MLflow model directory or a ``models:/`` URI (``ml.packaging.mlflow_source``). Unpickling
runs the file's code: it is the user's own model, packaged on their own command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.packaging.errors import PackagingError

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
ONNX_SUFFIX = ".onnx"
_SUPPORTED = (
    "a joblib or pickle file (.joblib, .pkl, .pickle) of a fitted scikit-learn classifier or "
    "pipeline, an .onnx file, an MLflow model directory (with an MLmodel file), or "
    "models:/NAME@ALIAS or models:/NAME/VERSION"
)


@dataclass(frozen=True)
class SklearnArtifact:
    """A fitted scikit-learn estimator with ``predict_proba``, and where it was read from."""

    estimator: Any
    source: str


@dataclass(frozen=True)
class OnnxArtifact:
    path: Path

    @property
    def source(self) -> str:
        return str(self.path)


Artifact = SklearnArtifact | OnnxArtifact


def read_artifact(source: str) -> Artifact:
    """The model named by ``source``; ``PackagingError`` saying what is wrong otherwise."""
    from ml.packaging import mlflow_source  # only here: a pickle or ONNX file needs no MLflow

    if mlflow_source.is_mlflow_source(source):
        return _mlflow_artifact(mlflow_source, source)
    path = Path(source)
    if not path.exists():
        raise PackagingError(f"artifact {source} does not exist: give {_SUPPORTED}")
    if path.suffix.lower() == ONNX_SUFFIX and path.is_file():
        return OnnxArtifact(path)
    if path.suffix.lower() not in PICKLE_SUFFIXES or not path.is_file():
        raise PackagingError(f"artifact {source} is not a supported model: give {_SUPPORTED}")
    estimator = _unpickle(path)
    require_classifier(estimator, source)
    return SklearnArtifact(estimator, source)


def require_classifier(estimator: Any, source: str) -> None:
    """Refuse what the server cannot answer with class probabilities."""
    kind = type(estimator).__name__
    if not callable(getattr(estimator, "predict_proba", None)):
        raise PackagingError(
            f"{source} holds a {kind}, which has no predict_proba: the server answers a label "
            "and the probability of each, so package a fitted classifier (or a pipeline ending "
            "in one)"
        )
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise PackagingError(f"{source} holds a {kind} that is not fitted: fit it, then save it")
    if len(classes) < 2:
        raise PackagingError(
            f"{source} predicts a single class ({list(classes)}): nothing to serve"
        )


def _unpickle(path: Path) -> Any:
    import joblib  # reads plain pickles too

    try:
        return joblib.load(path)
    except Exception as error:  # a truncated file, a class whose module is missing, ...
        raise PackagingError(
            f"cannot read {path}: {error!r}; save the fitted model with "
            "joblib.dump(model, path), with the scikit-learn version this project pins"
        ) from error


def _mlflow_artifact(mlflow_source: Any, source: str) -> SklearnArtifact:
    try:
        model = mlflow_source.load_mlflow_model(source)
    except ImportError as error:
        raise PackagingError(
            f"{source} is an MLflow model, and mlflow is missing: {error}"
        ) from error
    require_classifier(model.estimator, source)
    # Its provenance for the manifest: the version an alias named, the run, the format.
    return SklearnArtifact(model.estimator, model.provenance.describe())
