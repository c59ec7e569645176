"""``python -m registry add NAME --artifact PATH --sample FILE``: package a user's model.

The version is the next integer after the model's highest; the task is the model's own when
the name exists (``--task`` may only repeat it), else ``--task`` or the name itself. Every
refusal exits with 2 and leaves the store as it was: the version is built in a hidden folder
of the store (``.add-*``, which no scan reads), then renamed into place in one step.
With a target, the sample's rows and labels become the version's evaluation set, in
``_evaluation/<task>/<name>-<version>.csv`` (data, beside the bundled tasks' held-out sets),
where the API's evaluation route and the dashboard find it. ``--decision-threshold`` gives a
binary classifier the threshold its training tuned (``output.decision_threshold``): the
version answers its positive label from that probability on, and its held-out metrics are
measured so.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ml.manifest import ModelManifest
from ml.packaging.errors import PackagingError
from registry.store import StoreScan, scan_store

if TYPE_CHECKING:
    from ml.packaging.package import Packaged

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
EXIT_REFUSED = 2


class AddRefusedError(Exception):
    """The model cannot be added; the message says what to do instead."""


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``add`` subcommand's arguments."""
    parser.add_argument("name", help="model name: lowercase letters, digits, '-' and '_'")
    parser.add_argument(
        "--artifact",
        required=True,
        help="a joblib or pickle file of a fitted classifier or pipeline, an .onnx file, an "
        "MLflow model directory, or models:/NAME@ALIAS or models:/NAME/VERSION",
    )
    parser.add_argument(
        "--sample",
        required=True,
        type=Path,
        help="CSV or Parquet rows of the model's input columns: the schema, the example and, "
        "with --target, the held-out metrics come from it",
    )
    parser.add_argument("--target", help="the sample's label column, to measure the model")
    parser.add_argument("--task", help="task of the model (default: the name's, else the name)")
    parser.add_argument("--description", default="", help="one line about the model")
    parser.add_argument(
        "--labels",
        help="for an ONNX file whose graph names no classes: its labels, comma-separated, "
        "in the order of its probability columns",
    )
    parser.add_argument(
        "--decision-threshold",
        type=float,
        metavar="T",
        help="for a binary classifier: answer the positive label (the second) when its "
        "probability is at least T, 0 < T < 1 (default: the likeliest label); written into "
        "the manifest and applied to the held-out metrics",
    )


def run(args: argparse.Namespace) -> int:
    """Add the model; print its reference, or why not and exit with 2."""
    models_dir: Path = args.models_dir
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    try:
        packaged = add_model(
            models_dir,
            args.name,
            artifact=args.artifact,
            sample=args.sample,
            target=args.target,
            task=args.task,
            description=args.description,
            labels=labels,
            decision_threshold=args.decision_threshold,
        )
    except AddRefusedError as refusal:
        print(f"registry add: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    for note in packaged.notes:
        print(f"{packaged.manifest.ref}: {note}", file=sys.stderr)
    for warning in packaged.warnings:
        print(f"warning: {packaged.manifest.ref}: {warning}", file=sys.stderr)
    print(packaged.manifest.ref)
    return 0


def add_model(
    models_dir: Path,
    name: str,
    *,
    artifact: str,
    sample: Path,
    target: str | None = None,
    task: str | None = None,
    description: str = "",
    labels: list[str] | None = None,
    decision_threshold: float | None = None,
) -> Packaged:
    """Package the model as ``models_dir/name/<next version>``; ``AddRefusedError`` if not."""
    # Only here: pandas, scikit-learn and skl2onnx cost seconds that list and show need not pay.
    from ml.packaging.package import PackageRequest, package_model

    if not _NAME.match(name):
        raise AddRefusedError(
            f"invalid model name {name!r}: use lowercase letters, digits, '-' and '_', "
            "starting with a letter or a digit"
        )
    if decision_threshold is not None and not 0 < decision_threshold < 1:
        raise AddRefusedError(
            f"invalid --decision-threshold {decision_threshold}: give the positive label's "
            "probability from which it is answered, between 0 and 1 (both excluded)"
        )
    scan = scan_store(models_dir)
    task = _task(scan, name, task)
    if not _NAME.match(task):
        raise AddRefusedError(
            f"invalid task {task!r}: use lowercase letters, digits, '-' and '_' (it names "
            "the folder of the task's evaluation data)"
        )
    version = next_version(models_dir / name)
    request = PackageRequest(
        name=name,
        version=version,
        task=task,
        artifact=artifact,
        sample=sample,
        target=target,
        description=description,
        labels=labels,
        evaluation_dataset=f"_evaluation/{task}/{name}-{version}.csv",
        decision_threshold=decision_threshold,
    )
    evaluation_file = models_dir / request.evaluation_dataset
    # What this command creates, shallowest first: removed again on a refusal.
    candidates = (models_dir, models_dir / name, *reversed(evaluation_file.parents))
    created = [
        path
        for path in dict.fromkeys([*candidates, evaluation_file])
        if path.is_relative_to(models_dir) and not path.exists()
    ]
    models_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".add-{name}-", dir=models_dir))
    try:
        packaged = package_model(request, building)
        _check_task_labels(scan, packaged.manifest)
        if packaged.evaluation_rows is not None:
            evaluation_file.parent.mkdir(parents=True, exist_ok=True)
            packaged.evaluation_rows.to_csv(evaluation_file, index=False)
        (models_dir / name).mkdir(exist_ok=True)
        building.rename(models_dir / name / version)
    except (PackagingError, AddRefusedError, OSError) as error:
        _remove(created)
        raise AddRefusedError(str(error)) from error
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return packaged


def next_version(model_dir: Path) -> str:
    """One more than the highest integer version of the model (its folders), else 1."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return str(max(versions, default=0) + 1)


def _task(scan: StoreScan, name: str, wanted: str | None) -> str:
    tasks = {stored.manifest.task for stored in scan.models if stored.manifest.name == name}
    if not tasks:
        return wanted or name
    (task, *_) = sorted(tasks)
    if wanted is not None and wanted not in tasks:
        raise AddRefusedError(
            f"the name {name!r} is taken by a model of task {task!r}: pick another name for "
            f"a model of task {wanted!r}, or leave --task out to add a version of {name!r}"
        )
    return wanted or task


def _check_task_labels(scan: StoreScan, manifest: ModelManifest) -> None:
    """Models of one task stand in for each other: they must answer the same labels."""
    labels = sorted(manifest.output.labels)
    for stored in scan.models:
        other = stored.manifest
        if other.task == manifest.task and sorted(other.output.labels) != labels:
            raise AddRefusedError(
                f"{other.ref}, of task {manifest.task!r} too, answers {other.output.labels}, "
                f"this model {manifest.output.labels}: models of a task are each other's "
                "fallback, so give this one a task of its own with --task"
            )


def _remove(paths: list[Path]) -> None:
    """Remove what this command created, deepest first (only what did not exist before)."""
    for path in reversed(paths):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
