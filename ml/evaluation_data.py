"""Evaluation sets, read as requests would be: tabular rows validated against the model's
schema, audio clips decoded from their files. Shared by the API's evaluation route and the
training scripts, so both measure a model on exactly the same inputs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.audio import decode_audio
from ml.errors import InvalidInputError
from ml.manifest import ModelManifest, NumericFeature, TabularInput
from ml.tabular import TabularValidator

AUDIO_LABELS_FILE = "labels.csv"
"""In an audio evaluation folder: one ``file,label`` row per clip, beside the clips."""


class EvaluationUnavailableError(Exception):
    """The model has no usable evaluation set (none named, missing, or not fitting it)."""


@dataclass(frozen=True, slots=True)
class EvaluationSample:
    """One row or clip: what the model is given, and the label it should answer."""

    sample_id: str
    instance: Any
    true_label: str


def load_samples(
    manifest: ModelManifest, path: Path, max_audio_seconds: float, target: str | None = None
) -> list[EvaluationSample]:
    """The evaluation samples, validated and decoded as a request's input would be.

    A tabular file holds the feature columns and one label column: ``target`` when given,
    else whichever column is not a feature.
    """
    if isinstance(manifest.input, TabularInput):
        samples = _tabular_samples(path, manifest.input, target)
    else:
        samples = _audio_samples(path, max_audio_seconds)
    unknown = {s.true_label for s in samples} - set(manifest.output.labels)
    if unknown:
        raise EvaluationUnavailableError(
            f"{path.name} holds labels {sorted(unknown)} that {manifest.ref} does not predict"
        )
    if not samples:
        raise EvaluationUnavailableError(f"{path.name} holds no samples")
    return samples


def _tabular_samples(
    path: Path, schema: TabularInput, target: str | None
) -> list[EvaluationSample]:
    features = {feature.name: feature for feature in schema.features}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    if target is not None and target not in columns:
        raise EvaluationUnavailableError(
            f"{path.name} has no column {target!r} (its columns: {', '.join(columns)})"
        )
    if missing := [name for name in features if name not in columns]:
        raise EvaluationUnavailableError(f"{path.name} lacks the feature columns {missing}")
    targets = [column for column in columns if column not in features]
    if target is not None and targets != [target]:
        # A feature named as the target, or a second label column: scoring on whichever
        # column is left would measure the wrong thing.
        raise EvaluationUnavailableError(
            f"{path.name}: the label column {target!r} must be its one column that is not a "
            f"feature of the model; those are {targets}"
        )
    if len(targets) != 1:
        raise EvaluationUnavailableError(
            f"{path.name} needs the feature columns and one label column, "
            f"found extra columns {targets}"
        )
    (target,) = targets
    try:
        parsed = [
            {name: _parse_cell(row[name], feature) for name, feature in features.items()}
            for row in rows
        ]
        instances = TabularValidator(schema).validate(parsed, "rows")
    except (InvalidInputError, ValueError) as error:
        raise EvaluationUnavailableError(
            f"{path.name} does not fit the model's input schema: {error}"
        ) from error
    return [
        EvaluationSample(str(number), instance, row[target])
        for number, (instance, row) in enumerate(zip(instances, rows, strict=True), start=1)
    ]


def _parse_cell(text: str, feature: Any) -> object:
    """A CSV cell as the JSON value a client would send for this feature."""
    if text == "" and feature.nullable:
        return None  # an empty cell is a missing value
    if isinstance(feature, NumericFeature):
        return int(text) if feature.type == "integer" else float(text)
    return text


def _audio_samples(path: Path, max_seconds: float) -> list[EvaluationSample]:
    labels_file = path / AUDIO_LABELS_FILE if path.is_dir() else path
    if not labels_file.is_file():
        raise EvaluationUnavailableError(f"{path.name} has no {AUDIO_LABELS_FILE}")
    with labels_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    samples = []
    for row in rows:
        clip_path = labels_file.parent / row["file"]
        try:
            clip = decode_audio(clip_path.read_bytes(), max_seconds)
        except (OSError, InvalidInputError) as error:
            raise EvaluationUnavailableError(f"evaluation clip {row['file']}: {error}") from error
        samples.append(EvaluationSample(row["file"], clip, row["label"]))
    return samples
