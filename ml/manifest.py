"""The model manifest: the contract between training scripts and the serving registry.

Every model version lives in ``models/<name>/<version>/`` with a ``manifest.json`` that
validates against :class:`ModelManifest`, beside the artifact it describes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_FILENAME = "manifest.json"
_CHUNK_BYTES = 1 << 20
# A file in the model's own folder: no separator, no "..", so a manifest cannot point the
# registry at any other file on the machine.
ARTIFACT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Fields added since manifests were first written are left out of the file at their default
# (``exclude_if``), so that ``registry seal`` rewrites an old manifest byte for byte.
def _is_false(value: bool) -> bool:
    return not value


def _is_none(value: object) -> bool:
    return value is None


class NumericFeature(_Strict):
    """A numeric input column with the range seen in training (inclusive)."""

    name: str
    type: Literal["integer", "number"]
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    nullable: bool = Field(default=False, exclude_if=_is_false)
    """Whether ``null`` is accepted: a missing value, which the model itself imputes."""


class CategoricalFeature(_Strict):
    """A string input column that takes one of a closed set of values."""

    name: str
    type: Literal["category"]
    categories: list[str] = Field(min_length=1)
    description: str = ""
    nullable: bool = Field(default=False, exclude_if=_is_false)
    """Whether ``null`` is accepted: a missing value, which the model itself imputes."""


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="type")]


class TabularInput(_Strict):
    """Input schema of a tabular model: one JSON object of named features per row."""

    kind: Literal["tabular"] = "tabular"
    features: list[Feature] = Field(min_length=1)
    example: dict[str, Any]
    """A valid row, shown in the API docs and used to warm the model up."""

    @model_validator(mode="after")
    def _names_are_unique(self) -> TabularInput:
        names = [feature.name for feature in self.features]
        if len(names) != len(set(names)):
            raise ValueError("feature names must be unique")
        return self


class HashedFile(_Strict):
    """A file of the model's folder that serving reads, with its sha256."""

    file: str = Field(pattern=ARTIFACT_NAME)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AudioInput(_Strict):
    """Input schema of an audio model: one uploaded file, resampled and cut as stated."""

    kind: Literal["audio"] = "audio"
    sample_rate: int = Field(gt=0)
    clip_seconds: float = Field(gt=0)
    formats: list[str] = Field(min_length=1)
    features: dict[str, Any] = Field(default_factory=dict)
    """Feature-extraction parameters (n_mels, n_fft, hop_length, ...) shared with training."""
    mel_filterbank: HashedFile | None = Field(default=None, exclude_if=_is_none)
    """The (n_mels, 1 + n_fft / 2) float32 ``.npy`` that ``ml.log_mel`` applies, beside the
    model; None for runtimes that compute their own (librosa)."""


InputSchema = Annotated[TabularInput | AudioInput, Field(discriminator="kind")]


class OutputSchema(_Strict):
    """What the model answers: one of ``labels``, with a probability for each."""

    labels: list[str] = Field(min_length=2)
    positive_label: str | None = None
    """For binary tasks: the label whose probability is compared to the threshold."""
    decision_threshold: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _positive_label_is_known(self) -> OutputSchema:
        if self.positive_label is not None and self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} is not one of labels")
        return self


class Evaluation(_Strict):
    """Metrics measured on one evaluation set that training never saw."""

    dataset: str
    """Path of the evaluation data, relative to the model store root."""
    description: str = ""
    samples: int = Field(gt=0)
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    """Rows are true labels, columns predicted labels, both in ``output.labels`` order."""


class DatasetRef(_Strict):
    """The stored data set version a model was trained on (``db.datasets``), and its split."""

    name: str
    version: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    split: str
    """The recorded split whose held-out rows the model was evaluated on."""


class TrainingData(_Strict):
    source: str
    sha256: str
    rows: int | None = None
    dataset: DatasetRef | None = Field(default=None, exclude_if=_is_none)
    """Where the data was read from, when it was read from the database."""


class Training(_Strict):
    data: TrainingData
    code: str
    """The script that produced the artifact, e.g. ``ml/training/attrition.py``."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    cross_validation: dict[str, float] = Field(default_factory=dict)


class CompiledModel(_Strict):
    """An exact, pickle-free form of the model: its arithmetic as plain JSON numbers.

    Derived from the fitted estimator at training time and proven equal to its
    ``predict_proba`` on the held-out rows; serving it needs neither unpickling nor the
    training framework.
    """

    kind: Literal["linear-logistic", "tree-ensemble", "linear-softmax"]
    artifact: str = Field(pattern=ARTIFACT_NAME)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class OnnxConversion(_Strict):
    """How an ONNX artifact was converted from a scikit-learn pipeline or a torch network,
    and the proof of it.

    The source stays beside it as the reference (``source_artifact``, hashed like every
    artifact). The proof is the ONNX runtime, as served, against the source's probabilities:
    on every row of the sample given to ``python -m registry add`` (a pipeline), on the
    evaluation clips (an audio network, ``ml.packaging.export_audio_onnx``).
    """

    source_artifact: str = Field(pattern=ARTIFACT_NAME)
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    converter: str
    """The converter and its version, e.g. ``skl2onnx 1.20.0``."""
    precision: Literal["double", "float"]
    """The inputs' precision: double where the converter allows, else float."""
    rows: int = Field(gt=0)
    """How many sample rows the conversion was proven on."""
    max_probability_difference: float = Field(ge=0)
    same_labels: bool
    max_logit_difference: float | None = Field(default=None, ge=0, exclude_if=_is_none)
    """For a network: its graph against the source on the same inputs, before softmax."""


class ReferenceProfileFile(_Strict):
    """The reference profile of the model's inputs and outputs, for drift (``ml.drift``).

    Not among ``artifact_files``: serving does not need it, so a damaged profile stops the
    drift figures (which say why) and never the model.
    """

    file: str = Field(pattern=ARTIFACT_NAME)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelManifest(_Strict):
    """Everything known about one version of one model."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$")
    task: str
    """Models of the same task are interchangeable (same input, same labels)."""
    framework: str
    description: str = ""
    artifact: str = Field(pattern=ARTIFACT_NAME)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    compiled: CompiledModel | None = None
    """Optional exact fast form of the same model (see ``CompiledModel``)."""
    conversion: OnnxConversion | None = Field(default=None, exclude_if=_is_none)
    """For an ONNX artifact converted from a scikit-learn pipeline: how, and its proof."""
    reference_profile: ReferenceProfileFile | None = Field(default=None, exclude_if=_is_none)
    """Written at packaging beside the manifest; None for models packaged before drift."""
    architecture: str | None = None
    """For frameworks that store weights only: ``module:Class`` of the network code."""
    input: InputSchema
    output: OutputSchema
    metrics: dict[str, float] = Field(default_factory=dict)
    """Headline metrics on the main held-out set."""
    evaluations: list[Evaluation] = Field(default_factory=list)
    training: Training
    created_at: datetime
    manifest_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """The sha256 of every other field (see ``manifest_digest``), written by ``write_manifest``.

    Checked before a model loads, like an artifact's sha256: a manifest changed since it was
    written (one digit of ``decision_threshold``) is refused, and so is one without it.
    """

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def headline_evaluation(self) -> Evaluation | None:
        """The evaluation ``metrics`` were measured on: the first whose every figure is the
        headline's, or None. A figure is only meaningful with the data set it came from."""
        for evaluation in self.evaluations:
            figures = evaluation.metrics.items()
            if figures and all(self.metrics.get(name) == value for name, value in figures):
                return evaluation
        return None

    def artifact_files(self) -> list[tuple[str, str]]:
        """Every file of this version with its expected sha256."""
        files = [(self.artifact, self.sha256)]
        if self.compiled is not None:
            files.append((self.compiled.artifact, self.compiled.sha256))
        if self.conversion is not None:
            files.append((self.conversion.source_artifact, self.conversion.source_sha256))
        if isinstance(self.input, AudioInput) and self.input.mel_filterbank is not None:
            files.append((self.input.mel_filterbank.file, self.input.mel_filterbank.sha256))
        return files


def sha256_file(path: Path) -> str:
    """The sha256 a manifest records for an artifact, read in chunks (checkpoints can be big)."""
    digest = hashlib.sha256()
    with path.open("rb") as artifact:
        while chunk := artifact.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_manifest_json(manifest: ModelManifest) -> bytes:
    """The bytes ``manifest_sha256`` is the sha256 of: the manifest's content, canonically.

    Every field but ``manifest_sha256`` itself, as JSON with sorted keys, no whitespace
    between tokens, UTF-8, floats as Python writes them (the shortest text that reads back
    the same number); fields left at their default are left out (``exclude_defaults``), so
    that a field added to the schema later, with a default, keeps every digest already
    written valid. Two manifests with the same content have the same digest whatever the
    order or the spacing of their files.
    """
    content = manifest.model_dump(mode="json", exclude={"manifest_sha256"}, exclude_defaults=True)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def manifest_digest(manifest: ModelManifest) -> str:
    """The ``manifest_sha256`` that ``manifest``'s content calls for (its own one excluded)."""
    return hashlib.sha256(canonical_manifest_json(manifest)).hexdigest()


def sealed(manifest: ModelManifest) -> ModelManifest:
    """``manifest`` as ``write_manifest`` writes it: as a reader parses it, with its digest.

    The digest is computed over the manifest read back from its JSON, not over the object
    in memory (``model_copy`` does not validate: a tuple, a numpy number...), so that what
    is checked at load is what was sealed.
    """
    as_read = _parse(manifest.model_dump_json())
    return as_read.model_copy(update={"manifest_sha256": manifest_digest(as_read)})


def read_manifest(path: Path) -> ModelManifest:
    """Parse and validate one ``manifest.json`` (its digest is checked at load, not here)."""
    return _parse(path.read_text(encoding="utf-8"))


def write_manifest(manifest: ModelManifest, model_dir: Path) -> Path:
    """Write ``manifest.json`` into ``model_dir``, sealed with its digest (see ``sealed``).

    Every packaging path (the training scripts, ``python -m registry seal``, the tests'
    factories) writes through here; a ``manifest_sha256`` already in ``manifest`` is replaced.
    """
    path = model_dir / MANIFEST_FILENAME
    path.write_text(sealed(manifest).model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def _parse(text: str) -> ModelManifest:
    return ModelManifest.model_validate(json.loads(text))
