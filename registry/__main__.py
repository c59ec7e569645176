"""``python -m registry list|show NAME|validate``: inspect and check the model store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from registry.errors import InvalidModelRefError, ModelLoadError
from registry.hashing import verify_artifact
from registry.refs import parse_model_ref, version_sort_key
from registry.store import StoredModel, StoreScan, scan_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m registry", description=__doc__)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MODELS_DIR", "models")),
        help="model store root (default: $MODELS_DIR or ./models)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="one line per model version")
    show = commands.add_parser("show", help="the manifest of a model's latest (or given) version")
    show.add_argument("ref", help="name or name@version")
    commands.add_parser("validate", help="check every manifest and artifact hash")
    args = parser.parse_args(argv)
    scan = scan_store(args.models_dir)
    if args.command == "list":
        return _list(scan)
    if args.command == "show":
        return _show(scan, args.ref)
    return _validate(scan)


def _list(scan: StoreScan) -> int:
    print(f"{'MODEL':<24} {'VERSION':<9} {'TASK':<24} {'FRAMEWORK':<14} KEY METRIC")
    for stored in _sorted(scan.models):
        manifest = stored.manifest
        metric = next(iter(manifest.metrics.items()), None)
        shown = f"{metric[0]}={metric[1]:.3f}" if metric else "-"
        print(
            f"{manifest.name:<24} {manifest.version:<9} {manifest.task:<24} "
            f"{manifest.framework:<14} {shown}"
        )
    return 0


def _show(scan: StoreScan, ref: str) -> int:
    try:
        wanted = parse_model_ref(ref)
    except InvalidModelRefError as error:
        print(error, file=sys.stderr)
        return 2
    matches = [stored for stored in _sorted(scan.models) if stored.manifest.name == wanted.name]
    if wanted.version:
        matches = [stored for stored in matches if stored.manifest.version == wanted.version]
    if not matches:
        print(f"no model {ref!r} in the store", file=sys.stderr)
        return 1
    print(json.dumps(matches[-1].manifest.model_dump(mode="json"), indent=2))
    return 0


def _validate(scan: StoreScan) -> int:
    problems = list(scan.problems)
    for stored in _sorted(scan.models):
        problem = _artifact_problem(stored)
        status = "ok" if problem is None else f"FAILED: {problem}"
        print(f"{stored.manifest.ref}: {status}")
        if problem is not None:
            problems.append(f"{stored.manifest.ref}: {problem}")
    for problem in scan.problems:
        print(f"FAILED: {problem}")
    print(f"{len(scan.models)} model versions checked, {len(problems)} problems")
    return 1 if problems else 0


def _artifact_problem(stored: StoredModel) -> str | None:
    try:
        verify_artifact(stored.manifest, stored.model_dir)
    except ModelLoadError as error:
        return str(error)
    return None


def _sorted(models: list[StoredModel]) -> list[StoredModel]:
    return sorted(models, key=lambda s: (s.manifest.name, version_sort_key(s.manifest.version)))


if __name__ == "__main__":
    sys.exit(main())
