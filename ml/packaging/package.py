"""Packaging a user's model into the files of one model version, in a folder of its own.

From the artifact and the sample: the input schema, the served form, the held-out metrics
(with a target) and the manifest, written through ``write_manifest``. A scikit-learn model is
served by the fastest form proven equal to its ``predict_proba`` on every sample row:

1. its exact compiled form (``ml.packaging.compile_linear``, ``compile_tree``), when it
   applies and costs microseconds a row (it then runs on the event loop);
2. else ONNX Runtime, on skl2onnx's conversion (``ml.packaging.onnx_convert``), double
   precision where the converter allows, float otherwise; a compiled form that is too slow
   to run inline still wins over pickle when no conversion holds;
3. else the pickle and ``predict_proba``, about 5 ms a row instead of some 50 µs: with a
   warning that says why.

An ONNX file given as it is gets no proof (there is no reference to prove it against), but
must predict every sample row. The caller owns the folder: on an error it removes it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.errors import MLError
from ml.labels import LabelRule
from ml.manifest import (
    CompiledModel,
    Evaluation,
    ModelManifest,
    OnnxConversion,
    OutputSchema,
    TabularInput,
    Training,
    TrainingData,
    read_manifest,
    sha256_file,
    write_manifest,
)
from ml.packaging.artifact import OnnxArtifact, SklearnArtifact, read_artifact
from ml.packaging.errors import PackagingError
from ml.packaging.heldout import heldout_evaluation
from ml.packaging.proof import Proof, prove
from ml.packaging.reference_profile import with_reference_profile
from ml.packaging.sample import Sample, read_sample, sample_rows, sample_schema, split_sample
from ml.runtime import ModelRuntime, Prediction

logger = logging.getLogger(__name__)

PICKLE_ARTIFACT = "model.joblib"
COMPILED_ARTIFACT = "model.compiled.json"
ONNX_ARTIFACT = "model.onnx"
CODE = "python -m registry add"
ONNX_ATOL = 1e-5
"""How far ONNX Runtime's probabilities may be from ``predict_proba`` (float32 outputs)."""
PICKLE_COST = "about 5 ms a row instead of some 50 µs"


@dataclass(frozen=True)
class PackageRequest:
    """What ``python -m registry add`` was asked to package, its name and version chosen."""

    name: str
    version: str
    task: str
    artifact: str
    sample: Path
    target: str | None = None
    description: str = ""
    labels: list[str] | None = None
    """For an ONNX file whose graph names no class labels: in probability-column order."""
    evaluation_dataset: str = ""
    """Where the sample's rows and labels will lie, relative to the store (with a target)."""
    decision_threshold: float | None = None
    """For a binary classifier: the positive label's probability from which it is answered
    (``output.decision_threshold``, as the training writes it, 0 < T < 1: ``registry add``
    checks it before any work); None: the likeliest label."""


@dataclass
class Packaged:
    """The manifest written, what the command should tell, and the evaluation set to store."""

    manifest: ModelManifest
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evaluation_rows: pd.DataFrame | None = None
    """The sample's features and target, to store as the evaluation set (with a target)."""


@dataclass(frozen=True)
class _Form:
    """How the model will be served: the manifest's fields for it, and the proof if any."""

    framework: str
    artifact: str
    compiled: CompiledModel | None = None
    conversion: OnnxConversion | None = None
    note: str = ""


def package_model(request: PackageRequest, out_dir: Path) -> Packaged:
    """Write the model version's files into ``out_dir``; ``PackagingError`` if it cannot."""
    artifact = read_artifact(request.artifact)
    frame = read_sample(request.sample)
    if isinstance(artifact, OnnxArtifact):
        return _package_onnx(request, artifact, frame, out_dir)
    return _package_sklearn(request, artifact, frame, out_dir)


def _package_sklearn(
    request: PackageRequest, artifact: SklearnArtifact, frame: pd.DataFrame, out_dir: Path
) -> Packaged:
    estimator = artifact.estimator
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        raise PackagingError(
            f"{artifact.source} was fitted without column names (on an array): fit it on a "
            "pandas DataFrame, so that requests can name their features"
        )
    sample = split_sample(frame, request.sample, [str(name) for name in names], request.target)
    schema = sample_schema(sample.features)
    rows = sample_rows(sample.features, schema)
    try:
        expected = np.asarray(estimator.predict_proba(sample.features), dtype=np.float64)
    except Exception as error:  # whatever the estimator raises: the sample does not fit it
        raise PackagingError(
            f"the model fails on the sample: {error!r}; give a sample of the columns and "
            "values it was fitted on"
        ) from error
    classes = [str(label) for label in estimator.classes_]
    output = _output(classes)
    import joblib  # packaging only: the server may never unpickle it

    joblib.dump(estimator, out_dir / PICKLE_ARTIFACT, compress=3)
    base = _manifest(request, artifact.source, type(estimator).__name__, schema, output, sample)
    packaged = Packaged(base)
    form, runtime = _serving_form(base, out_dir, estimator, rows, expected, packaged)
    manifest = _served_as(base, out_dir, form)
    packaged.notes.append(form.note)
    predictions = _predict(runtime, rows)
    return _finish(packaged, manifest, request, sample, rows, predictions, out_dir)


def _package_onnx(
    request: PackageRequest, artifact: OnnxArtifact, frame: pd.DataFrame, out_dir: Path
) -> Packaged:
    from ml.onnx_runtime import OnnxRuntime
    from ml.packaging.onnx_file import onnx_class_labels

    labels = request.labels or onnx_class_labels(artifact.path)
    if not labels:
        raise PackagingError(
            f"{artifact.path} names no class labels: pass --labels, in the order of its "
            "probability columns"
        )
    sample = split_sample(
        frame, request.sample, _onnx_features(artifact.path, frame, request.target), request.target
    )
    schema = sample_schema(sample.features)
    rows = sample_rows(sample.features, schema)
    shutil.copyfile(artifact.path, out_dir / ONNX_ARTIFACT)
    base = _manifest(request, artifact.source, "ONNX", schema, _output(labels), sample)
    manifest = _served_as(base, out_dir, _Form(OnnxRuntime.framework, ONNX_ARTIFACT))
    runtime = _loaded(OnnxRuntime(manifest, out_dir))
    predictions = _predict(runtime, rows)
    packaged = Packaged(manifest, notes=["served by ONNX Runtime, as given"])
    return _finish(packaged, manifest, request, sample, rows, predictions, out_dir)


def _onnx_features(path: Path, frame: pd.DataFrame, target: str | None) -> list[str]:
    """The sample columns the ONNX model reads: its inputs' names, or all but the target."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's errors for a broken or unsupported graph
        raise PackagingError(f"ONNX Runtime cannot load {path}: {error}") from error
    names = [node.name for node in session.get_inputs()]
    if all(name in frame.columns for name in names):
        return names
    if len(names) == 1:
        return [str(column) for column in frame.columns if column != target]
    raise PackagingError(
        f"the ONNX model's inputs {names} are not columns of the sample: name one input per "
        "feature as the sample's column, or give a single 2-D input of every column"
    )


def _serving_form(
    base: ModelManifest,
    out_dir: Path,
    estimator: Any,
    rows: list[dict[str, object]],
    expected: np.ndarray,
    packaged: Packaged,
) -> tuple[_Form, ModelRuntime]:
    """The fastest proven form, its runtime loaded; the files of the others removed."""
    classes = base.output.labels
    compiled = _compiled_form(base, out_dir, estimator, rows, expected)
    if compiled is not None and compiled[1].runs_inline:
        return compiled
    onnx, failures = _onnx_form(base, out_dir, estimator, rows, expected, classes)
    if onnx is not None:
        (out_dir / COMPILED_ARTIFACT).unlink(missing_ok=True)
        return onnx
    if compiled is not None:
        return compiled
    packaged.warnings.append(
        f"no fast path: served by pickle and predict_proba, {PICKLE_COST} ({'; '.join(failures)})"
    )
    form = _Form("sklearn", PICKLE_ARTIFACT, note="served by pickle and predict_proba")
    return form, _loaded(_sklearn_runtime(base, out_dir, form))


def _compiled_form(
    base: ModelManifest,
    out_dir: Path,
    estimator: Any,
    rows: list[dict[str, object]],
    expected: np.ndarray,
) -> tuple[_Form, ModelRuntime] | None:
    """The exact compiled form (the bundled attrition models'), when one applies and holds."""
    from ml.packaging.compile import FASTPATH_ATOL, FASTPATH_RTOL, compiled_text
    from ml.packaging.compile_linear import compile_linear_pipeline
    from ml.packaging.compile_tree import compile_tree_pipeline

    assert isinstance(base.input, TabularInput)
    for compiler in (compile_linear_pipeline, compile_tree_pipeline):
        scorer = compiler(estimator, base.input)
        if scorer is None:
            continue
        path = out_dir / COMPILED_ARTIFACT
        path.write_text(compiled_text(scorer), encoding="utf-8")
        kind = scorer.to_dict()["kind"]
        compiled = CompiledModel(kind=kind, artifact=COMPILED_ARTIFACT, sha256=sha256_file(path))
        form = _Form("sklearn", PICKLE_ARTIFACT, compiled=compiled)
        runtime = _loaded(_sklearn_runtime(base, out_dir, form))
        proof = prove(
            runtime, rows, expected, base.output.labels, atol=FASTPATH_ATOL, rtol=FASTPATH_RTOL
        )
        if proof.holds:
            note = f"served by its compiled {kind} form, proven {proof.describe()}"
            return replace(form, note=note), runtime
        logger.warning("The compiled %s form does not hold %s", kind, proof.describe())
        path.unlink()
    return None


def _onnx_form(
    base: ModelManifest,
    out_dir: Path,
    estimator: Any,
    rows: list[dict[str, object]],
    expected: np.ndarray,
    classes: Sequence[str],
) -> tuple[tuple[_Form, ModelRuntime] | None, list[str]]:
    """ONNX Runtime on the first conversion that holds, or None and why none did."""
    from ml.onnx_runtime import OnnxRuntime
    from ml.packaging.onnx_convert import CONVERTER, PRECISIONS, ConversionError, convert_to_onnx

    assert isinstance(base.input, TabularInput)
    path = out_dir / ONNX_ARTIFACT
    failures = []
    for precision in PRECISIONS:
        try:
            path.write_bytes(convert_to_onnx(estimator, base.input, precision))
            manifest = _served_as(base, out_dir, _Form(OnnxRuntime.framework, ONNX_ARTIFACT))
            runtime = _loaded(OnnxRuntime(manifest, out_dir))
            proof = prove(runtime, rows, expected, classes, atol=ONNX_ATOL)
        except (ConversionError, PackagingError) as error:
            failures.append(f"{precision} conversion: {error}")
            continue
        if proof.holds:
            conversion = _conversion(out_dir, CONVERTER, precision, proof)
            note = f"served by ONNX Runtime ({precision} precision), proven {proof.describe()}"
            form = _Form(OnnxRuntime.framework, ONNX_ARTIFACT, conversion=conversion, note=note)
            return (form, runtime), []
        failures.append(f"{precision} conversion differs {proof.describe()}")
    path.unlink(missing_ok=True)
    return None, failures


def _conversion(out_dir: Path, converter: str, precision: Any, proof: Proof) -> OnnxConversion:
    return OnnxConversion(
        source_artifact=PICKLE_ARTIFACT,
        source_sha256=sha256_file(out_dir / PICKLE_ARTIFACT),
        converter=converter,
        precision=precision,
        rows=proof.rows,
        max_probability_difference=proof.max_probability_difference,
        same_labels=proof.same_labels,
    )


def _served_as(base: ModelManifest, out_dir: Path, form: _Form) -> ModelManifest:
    """``base`` served in ``form``: its framework, artifact (hashed), compiled form, conversion."""
    return base.model_copy(
        update={
            "framework": form.framework,
            "artifact": form.artifact,
            "sha256": sha256_file(out_dir / form.artifact),
            "compiled": form.compiled,
            "conversion": form.conversion,
        }
    )


def _sklearn_runtime(base: ModelManifest, out_dir: Path, form: _Form) -> ModelRuntime:
    from ml.sklearn_runtime import SklearnRuntime

    return SklearnRuntime(_served_as(base, out_dir, form), out_dir)


def _loaded(runtime: ModelRuntime) -> ModelRuntime:
    """``runtime`` loaded and warmed up as the server will; a failure is the model's."""
    try:
        runtime.load()
        runtime.warm_up()
    except MLError as error:
        raise PackagingError(str(error)) from error
    return runtime


def _predict(runtime: ModelRuntime, rows: list[dict[str, object]]) -> list[Prediction]:
    try:
        return runtime.predict(rows)
    except MLError as error:
        raise PackagingError(
            f"the model fails on the sample as the server runs it: {error}; give a sample of "
            "the columns and values it was fitted on"
        ) from error


def _output(labels: list[str]) -> OutputSchema:
    """The likeliest label wins; for two, the second is the positive one (ROC AUC's)."""
    if len(set(labels)) != len(labels):
        raise PackagingError(f"the model's labels {labels} are not distinct")
    return OutputSchema(labels=labels, positive_label=labels[1] if len(labels) == 2 else None)


def _manifest(
    request: PackageRequest,
    source: str,
    estimator: str,
    schema: TabularInput,
    output: OutputSchema,
    sample: Sample,
) -> ModelManifest:
    """The manifest before its serving form is chosen (pickle until then)."""
    return ModelManifest(
        name=request.name,
        version=request.version,
        task=request.task,
        framework="sklearn",
        description=request.description or f"{estimator} from {source}, packaged by {CODE}",
        artifact=PICKLE_ARTIFACT,
        sha256="0" * 64,
        input=schema,
        output=output,
        training=Training(
            data=TrainingData(
                source=f"sample {sample.path.name} given to {CODE}",
                sha256=sample.sha256,
                rows=len(sample.features),
            ),
            code=CODE,
            parameters={"estimator": estimator, "artifact": source},
        ),
        created_at=datetime.now(UTC),
    )


def _finish(
    packaged: Packaged,
    manifest: ModelManifest,
    request: PackageRequest,
    sample: Sample,
    rows: list[dict[str, object]],
    predictions: list[Prediction],
    out_dir: Path,
) -> Packaged:
    """Add the decision threshold (if asked), the held-out metrics (with a target) and the
    reference profile of the sample, then write the sealed manifest."""
    if request.decision_threshold is not None:
        manifest, predictions = _with_threshold(manifest, predictions, request.decision_threshold)
    evaluations: list[Evaluation] = []
    if sample.target is not None:
        evaluation = heldout_evaluation(
            predictions,
            [str(label) for label in sample.target],
            manifest.output,
            request.evaluation_dataset,
            f"the sample given to {CODE} ({sample.path.name}), as served",
        )
        evaluations.append(evaluation)
        packaged.evaluation_rows = sample.features.assign(
            **{str(sample.target.name): sample.target}
        )
    if sample.ignored:
        packaged.notes.append(
            f"columns the model does not read, ignored: {', '.join(sample.ignored)}"
        )
    manifest = manifest.model_copy(
        update={
            "evaluations": evaluations,
            "metrics": dict(evaluations[0].metrics) if evaluations else {},
        }
    )
    manifest = with_reference_profile(
        manifest,
        rows,
        [prediction.label for prediction in predictions],
        f"the sample given to {CODE} ({sample.path.name})",
        out_dir,
    )
    packaged.manifest = read_manifest(write_manifest(manifest, out_dir))
    return packaged


def _with_threshold(
    manifest: ModelManifest, predictions: list[Prediction], threshold: float
) -> tuple[ModelManifest, list[Prediction]]:
    """``manifest`` answering its positive label from ``threshold`` on, and ``predictions``
    labelled as its runtime will then label them (the rule is ``ml.labels.LabelRule``'s).

    The serving form was proven at the default rule (the likeliest label, as ``predict_proba``
    and ``argmax``); the threshold only changes which label the same probabilities give.
    """
    output = manifest.output
    if output.positive_label is None:
        raise PackagingError(
            f"a decision threshold applies to a binary classifier only: this model answers "
            f"{len(output.labels)} labels {output.labels}; leave --decision-threshold out"
        )
    output = output.model_copy(update={"decision_threshold": threshold})
    decide = LabelRule(output).decide
    relabelled = [
        Prediction(label=decide(prediction.probabilities), probabilities=prediction.probabilities)
        for prediction in predictions
    ]
    return manifest.model_copy(update={"output": output}), relabelled
