"""``python -m registry evaluate NAME@VERSION --sample CSV --target COLUMN``: a stored version's
metrics on labelled rows of your choosing, printed as one JSON object.

The version is loaded as the server loads it (manifest and artifact hashes checked, the
framework's runtime of its manifest, on the CPU) and predicts every row, read and validated
as a request's would be (``ml.evaluation_data``). The metrics are those ``registry add`` and
the training record in a manifest: for a binary task ``roc_auc``, ``f1``, ``precision``,
``recall`` and ``accuracy`` of the positive label, at the manifest's decision threshold
(``ml.packaging.heldout``, computed with ``ml.evaluation``). So two models scored on the same
file are scored on the same rows. The CSV holds the model's feature columns and the
``--target`` column, nothing else. Exit codes: 0 scored; 1 no such version in the store, or it
cannot load or predict; 2 an invalid reference or a sample that does not fit the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.errors import describe_error
from ml.manifest import ModelManifest, TabularInput
from ml.packaging.errors import PackagingError
from registry.catalogue import Catalogue, ModelEntry
from registry.errors import InvalidModelRefError, ModelLoadError, ModelNotFoundError
from registry.events import SilentListener
from registry.refs import parse_model_ref
from registry.store import scan_store

if TYPE_CHECKING:
    from ml.evaluation_data import EvaluationSample

EXIT_NOT_SCORED = 1
EXIT_REFUSED = 2


class EvaluateError(Exception):
    """The version cannot be scored on the sample; ``exit_code`` says why (1 or 2)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``evaluate`` subcommand's arguments."""
    parser.add_argument("ref", help="NAME@VERSION (NAME alone: its latest version)")
    parser.add_argument(
        "--sample",
        required=True,
        type=Path,
        help="CSV of the model's feature columns and the label column",
    )
    parser.add_argument("--target", required=True, help="the sample's label column")


def run(args: argparse.Namespace) -> int:
    """Print the version's metrics on the sample as JSON, or why not and exit with 1 or 2."""
    models_dir: Path = args.models_dir
    try:
        result = evaluate_version(models_dir, args.ref, sample=args.sample, target=args.target)
    except EvaluateError as error:
        print(f"registry evaluate: {error}", file=sys.stderr)
        return error.exit_code
    print(json.dumps(result))
    return 0


def evaluate_version(models_dir: Path, ref: str, *, sample: Path, target: str) -> dict[str, Any]:
    """The metrics of ``ref`` from ``models_dir`` on ``sample``; ``EvaluateError`` if not."""
    # Only here: numpy and the runtimes cost what list and show need not pay.
    from ml.packaging.heldout import heldout_evaluation
    from registry.factories import framework_runtimes
    from registry.loader import ModelLoader

    entry = _find(models_dir, ref)
    manifest = entry.manifest
    samples = _read(manifest, sample, target)
    loader = ModelLoader(framework_runtimes("cpu"), SilentListener(), max_loaded=None)
    try:
        runtime = loader.load(entry)
    except ModelLoadError as error:
        raise EvaluateError(f"{manifest.ref} cannot be loaded: {error}", EXIT_NOT_SCORED) from None
    try:
        predictions = runtime.predict([s.instance for s in samples])
    except Exception as error:  # whatever the framework raises, the model failed
        raise EvaluateError(
            f"{manifest.ref} failed on {sample}: {describe_error(error)}", EXIT_NOT_SCORED
        ) from error
    finally:
        loader.unload(entry)
    try:
        evaluation = heldout_evaluation(
            predictions,
            [s.true_label for s in samples],
            manifest.output,
            dataset=str(sample),
            description=f"{manifest.ref} on {sample}, label column {target!r}",
        )
    except PackagingError as error:
        raise EvaluateError(str(error), EXIT_REFUSED) from None
    return {
        "model": manifest.name,
        "version": manifest.version,
        "sample": str(sample),
        "target": target,
        "samples": evaluation.samples,
        "metrics": evaluation.metrics,
    }


def _find(models_dir: Path, ref: str) -> ModelEntry:
    try:
        wanted = parse_model_ref(ref)
    except InvalidModelRefError as error:
        raise EvaluateError(str(error), EXIT_REFUSED) from None
    scan = scan_store(models_dir)
    try:
        return Catalogue(scan.models).find(wanted)
    except ModelNotFoundError as error:
        unreadable = [
            u for u in scan.unreadable if wanted.matches(u.name, u.version) and wanted.version
        ]
        why = unreadable[0].error if unreadable else error
        raise EvaluateError(
            f"no model {ref!r} in the store {models_dir}: {why}", EXIT_NOT_SCORED
        ) from None


def _read(manifest: ModelManifest, sample: Path, target: str) -> list[EvaluationSample]:
    """The sample's rows, validated against the model's schema; ``target`` its labels."""
    from ml.evaluation_data import EvaluationUnavailableError, load_samples

    if not isinstance(manifest.input, TabularInput):
        raise EvaluateError(
            f"{manifest.ref} does not take tabular rows: only tabular models are scored from a CSV",
            EXIT_REFUSED,
        )
    try:
        return load_samples(manifest, sample, max_audio_seconds=0, target=target)
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluateError(f"cannot read the sample {sample}: {error}", EXIT_REFUSED) from None
    except EvaluationUnavailableError as error:
        raise EvaluateError(f"{manifest.ref}: {error}", EXIT_REFUSED) from None
