"""Model manifests for tests: valid ``ModelManifest`` objects, and model folders in a store.

``make_manifest()`` builds a manifest that validates, with defaults for everything a test
does not care about; keyword arguments override what it does care about::

    make_manifest("tones", input=audio_input(sample_rate=8000), labels=["low", "high"])

``write_model(store, manifest, artifact=...)`` lays it out as the registry reads it,
``store/<name>/<version>/manifest.json``, beside its artifact (whose sha256 it records), and
``rewrite_manifest(model_dir, ...)`` changes fields of a manifest already in a store (a copy of
a committed model, say). All three go through pydantic, so a test cannot write a manifest the
training scripts could not, and seal what they make with its digest (``manifest_sha256``), as
``write_manifest`` does: the registry refuses a manifest without a valid one.

``tamper_manifest(model_dir)`` is the exception on purpose: it edits one digit in the file's
text, as a hand would, and leaves the digest as it was. So are ``truncate_manifest`` (the
half file an interrupted copy leaves) and ``unseal_manifest`` (a manifest written before
manifests carried a digest).

For audio models: ``write_audio_model(store)`` writes ``instrument-mock`` (served by the mock
runtime of ENV=test), and ``tone(...)`` and ``silence(...)`` encode clips to upload.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ml.manifest import (
    MANIFEST_FILENAME,
    AudioInput,
    CategoricalFeature,
    CompiledModel,
    Evaluation,
    Feature,
    ModelManifest,
    NumericFeature,
    OutputSchema,
    TabularInput,
    Training,
    TrainingData,
    read_manifest,
    sealed,
    sha256_file,
    write_manifest,
)

InputKind = Literal["tabular", "audio"]

ARTIFACT = "model.joblib"
COMPILED_ARTIFACT = "model.compiled.json"
# The sha256 of a manifest written without its artifact (the mock runtime reads none).
NO_ARTIFACT_SHA256 = "0" * 64
# Fixed, so that two manifests built alike are equal.
CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)

TABULAR_LABELS = ("no", "yes")
AUDIO_LABELS = ("low", "mid", "high")
FRAMEWORKS: dict[InputKind, str] = {"tabular": "sklearn", "audio": "torch-audio"}

_UNSET: Any = object()


def tabular_input(
    features: Sequence[Feature] | None = None,
    example: Mapping[str, Any] | None = None,
) -> TabularInput:
    """A tabular schema; by default a number, a category and an integer, with an example row."""
    if features is None:
        features = [
            NumericFeature(name="size", type="integer", minimum=0, maximum=100),
            CategoricalFeature(name="color", type="category", categories=["blue", "green", "red"]),
            NumericFeature(name="weight", type="number"),
        ]
        example = example if example is not None else {"size": 10, "color": "red", "weight": 2.5}
    if example is None:
        raise ValueError("a tabular schema with custom features needs its example row")
    return TabularInput(features=list(features), example=dict(example))


def audio_input(
    sample_rate: int = 16_000,
    clip_seconds: float = 1.0,
    formats: Sequence[str] = ("wav",),
    features: Mapping[str, Any] | None = None,
) -> AudioInput:
    """An audio schema: one clip of ``clip_seconds`` at ``sample_rate`` in one of ``formats``."""
    return AudioInput(
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        formats=list(formats),
        features=dict(features or {}),
    )


def evaluation(
    dataset: str,
    samples: int = 3,
    metrics: Mapping[str, float] | None = None,
    **fields: Any,
) -> Evaluation:
    """One evaluation record (``per_class``, ``confusion_matrix``... as keywords)."""
    return Evaluation(dataset=dataset, samples=samples, metrics=dict(metrics or {}), **fields)


def make_manifest(
    name: str = "toy",
    version: str = "1",
    *,
    input: TabularInput | AudioInput | InputKind = "tabular",
    task: str | None = None,
    framework: str | None = None,
    labels: Sequence[str] | None = None,
    positive_label: str | None = _UNSET,
    decision_threshold: float | None = _UNSET,
    artifact: str = ARTIFACT,
    sha256: str = NO_ARTIFACT_SHA256,
    compiled: CompiledModel | None = None,
    evaluations: Sequence[Evaluation] = (),
    metrics: Mapping[str, float] | None = None,
    **fields: Any,
) -> ModelManifest:
    """A valid manifest of model ``name@version``; every default can be overridden.

    - ``input``: a schema (``tabular_input(...)``, ``audio_input(...)``) or just its kind,
      for the default schema of that kind.
    - ``task``: ``name`` by default, so a made-up model shares no fallback with another.
    - ``framework``: ``sklearn`` for tabular input, ``torch-audio`` for audio.
    - ``labels``: ``no, yes`` for tabular input, ``low, mid, high`` for audio. A tabular model
      with two labels has its last one as ``positive_label`` and a ``decision_threshold`` of
      0.5 unless told otherwise; other models have neither. Pass ``None`` to leave one out.
    - ``sha256`` of an artifact that is not written (``write_model`` sets the real one).
    - any other field of ``ModelManifest`` (``description``, ``architecture``, ``training``,
      ``created_at``) as a keyword.

    The manifest is sealed: its ``manifest_sha256`` is the digest of the rest, as written.
    """
    schema = (
        input
        if not isinstance(input, str)
        else (tabular_input() if input == "tabular" else audio_input())
    )
    labels = list(
        labels
        if labels is not None
        else TABULAR_LABELS
        if schema.kind == "tabular"
        else AUDIO_LABELS
    )
    binary_tabular = schema.kind == "tabular" and len(labels) == 2
    if positive_label is _UNSET:
        positive_label = labels[-1] if binary_tabular else None
    if decision_threshold is _UNSET:
        decision_threshold = 0.5 if binary_tabular and positive_label is not None else None
    values: dict[str, Any] = {
        "training": Training(data=TrainingData(source="synthetic", sha256="0" * 64), code="tests"),
        "created_at": CREATED_AT,
        **fields,
    }
    manifest = ModelManifest(
        name=name,
        version=version,
        task=task if task is not None else name,
        framework=framework if framework is not None else FRAMEWORKS[schema.kind],
        artifact=artifact,
        sha256=sha256,
        compiled=compiled,
        input=schema,
        output=OutputSchema(
            labels=labels, positive_label=positive_label, decision_threshold=decision_threshold
        ),
        metrics=dict(metrics or {}),
        evaluations=list(evaluations),
        **values,
    )
    return sealed(manifest)


class StoredModel(NamedTuple):
    """A model version written in a store: its manifest (as read back) and its folder."""

    manifest: ModelManifest
    model_dir: Path


def write_model(
    store: Path,
    manifest: ModelManifest | None = None,
    *,
    artifact: bytes | Path | object | None = None,
    compiled: str | None = None,
    **overrides: Any,
) -> StoredModel:
    """Write ``manifest`` (or ``make_manifest(**overrides)``) in ``store/<name>/<version>/``.

    - ``artifact``: the artifact file to write beside it, whose sha256 the manifest then
      records: bytes as they are, a file copied, or any other object dumped with joblib.
      Without it only the manifest is written (enough for the mock runtime of ENV=test).
    - ``compiled``: the text of a compiled form (``ml.packaging.compile.compiled_text``),
      written as ``model.compiled.json`` and recorded, with the kind its JSON names.

    The manifest returned is the one read back from disk, as the registry would read it.
    """
    if manifest is None:
        manifest = make_manifest(**overrides)
    elif overrides:
        raise TypeError("pass either a manifest or make_manifest's keywords, not both")
    model_dir = store / manifest.name / manifest.version
    model_dir.mkdir(parents=True, exist_ok=True)
    changes: dict[str, Any] = {}
    if artifact is not None:
        path = model_dir / manifest.artifact
        if isinstance(artifact, bytes):
            path.write_bytes(artifact)
        elif isinstance(artifact, Path):
            path.write_bytes(artifact.read_bytes())
        else:
            import joblib

            joblib.dump(artifact, path, compress=3)
        changes["sha256"] = sha256_file(path)
    if compiled is not None:
        path = model_dir / COMPILED_ARTIFACT
        path.write_text(compiled, encoding="utf-8")
        changes["compiled"] = CompiledModel(
            kind=json.loads(compiled)["kind"], artifact=path.name, sha256=sha256_file(path)
        )
    write_manifest(_updated(manifest, changes), model_dir)
    return StoredModel(read_manifest(model_dir / MANIFEST_FILENAME), model_dir)


def rewrite_manifest(model_dir: Path, **changes: Any) -> ModelManifest:
    """Change fields of the manifest in ``model_dir`` (validated again), write it back, sealed.

    Returns the manifest as written, with its new digest.
    """
    manifest = _updated(read_manifest(model_dir / MANIFEST_FILENAME), changes)
    return read_manifest(write_manifest(manifest, model_dir))


def tamper_manifest(model_dir: Path, field: str = "decision_threshold") -> tuple[float, float]:
    """Change the first decimal of the number ``field`` in ``model_dir``'s manifest file.

    The text is edited in place and the digest left as it was: the manifest a careless edit
    leaves. Returns the number before and after.
    """
    path = model_dir / MANIFEST_FILENAME
    text = path.read_text(encoding="utf-8")
    match = re.search(rf'"{re.escape(field)}": (-?\d+\.\d+)', text)
    if match is None:
        raise ValueError(f"no decimal number {field!r} in {path}")
    old = match[1]
    point = old.index(".") + 1
    new = f"{old[:point]}{(int(old[point]) + 1) % 10}{old[point + 1 :]}"
    path.write_text(text[: match.start(1)] + new + text[match.end(1) :], encoding="utf-8")
    return float(old), float(new)


def truncate_manifest(model_dir: Path) -> None:
    """Cut the manifest in ``model_dir`` in half, as an interrupted copy leaves it."""
    path = model_dir / MANIFEST_FILENAME
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def unseal_manifest(model_dir: Path) -> None:
    """Remove the digest of the manifest in ``model_dir``: as written before manifests had one."""
    path = model_dir / MANIFEST_FILENAME
    content = json.loads(path.read_text())
    del content["manifest_sha256"]
    path.write_text(json.dumps(content, indent=2) + "\n")


INSTRUMENT_LABELS = ("violin", "flute", "piano")


def write_audio_model(store: Path) -> StoredModel:
    """``instrument-mock``: an audio model's manifest (the mock runtime of ENV=test needs no
    artifact) over 2 s clips at 22,050 Hz, as WAV, FLAC, OGG or MP3."""
    return write_model(
        store,
        make_manifest(
            "instrument-mock",
            task="instrument-recognition",
            framework="torch-audio",
            input=audio_input(
                sample_rate=22050, clip_seconds=2.0, formats=["wav", "flac", "ogg", "mp3"]
            ),
            labels=INSTRUMENT_LABELS,
        ),
    )


def tone(seconds: float = 1.0, rate: int = 16000, channels: int = 1, fmt: str = "WAV") -> bytes:
    """A 440 Hz sine of ``seconds`` at ``rate``, on each of ``channels``, encoded as ``fmt``."""
    import numpy as np
    import soundfile

    time_axis = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 440 * time_axis)
    data = np.stack([signal] * channels, axis=1) if channels > 1 else signal
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, format=fmt)
    return buffer.getvalue()


def silence(seconds: float, rate: int, channels: int, fmt: str = "FLAC") -> bytes:
    """``seconds`` of silence, written a second at a time so the test holds little memory."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    block = np.zeros((rate, channels), dtype=np.int16)
    with soundfile.SoundFile(
        buffer, "w", samplerate=rate, channels=channels, format=fmt, subtype="PCM_16"
    ) as sink:
        whole, rest = divmod(int(seconds * rate), rate)
        for _ in range(whole):
            sink.write(block)
        sink.write(block[:rest])
    return buffer.getvalue()


def _updated(manifest: ModelManifest, changes: Mapping[str, Any]) -> ModelManifest:
    """``manifest`` with ``changes``, validated (``model_copy`` would not validate them)."""
    if not changes:
        return manifest
    fields = {name: getattr(manifest, name) for name in ModelManifest.model_fields}
    return ModelManifest.model_validate({**fields, **changes})
