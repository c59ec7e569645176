"""``python -m registry list|show NAME|validate|seal|add NAME|evaluate NAME@VERSION``: inspect,
check, fill and measure the model store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ml.manifest import ModelManifest, manifest_digest, write_manifest
from registry import add, evaluate
from registry.errors import InvalidModelRefError, ModelLoadError
from registry.hashing import verify_artifact
from registry.refs import ModelRef, parse_model_ref, version_sort_key
from registry.store import StoredModel, StoreScan, scan_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m registry", description=__doc__)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MODELS_DIR", "models")),
        help="model store root (default: $MODELS_DIR or ./models)",
    )
    # Also accepted after the command (`registry add NAME ... --models-dir DIR`), for every one.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument(
        "--models-dir",
        dest="command_models_dir",
        type=Path,
        help="model store root (default: the --models-dir before the command, $MODELS_DIR "
        "or ./models)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="one line per model version", parents=[after])
    show = commands.add_parser(
        "show", help="the manifest of a model's latest (or given) version", parents=[after]
    )
    show.add_argument("ref", help="name or name@version")
    commands.add_parser(
        "validate", help="check every manifest digest and artifact hash", parents=[after]
    )
    seal = commands.add_parser(
        "seal",
        help="write the manifest digest (manifest_sha256) of versions that have none",
        description="Write manifest_sha256 into the manifests that have none (written before "
        "manifests carried one). A digest that no longer matches is left alone unless "
        "--reseal names the version: only for a change you made and checked yourself.",
        parents=[after],
    )
    seal.add_argument("refs", nargs="*", help="name or name@version (default: every version)")
    seal.add_argument(
        "--reseal",
        action="store_true",
        help="also replace a digest that no longer matches, for the versions named",
    )
    for module, summary in (
        (add, "package your own model as the next version of NAME"),
        (evaluate, "a version's metrics on a labelled CSV, as JSON"),
    ):
        module.configure(
            commands.add_parser(
                module.__name__.rsplit(".", 1)[-1],
                help=summary,
                description=module.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                parents=[after],
            )
        )
    args = parser.parse_args(argv)
    args.models_dir = args.command_models_dir or args.models_dir
    if args.command == "add":
        return add.run(args)
    if args.command == "evaluate":
        return evaluate.run(args)
    scan = scan_store(args.models_dir)
    if args.command == "list":
        return _list(scan)
    if args.command == "show":
        return _show(scan, args.ref)
    if args.command == "seal":
        return _seal(scan, args.refs, reseal=args.reseal)
    return _validate(scan)


def _list(scan: StoreScan) -> int:
    print(f"{'MODEL':<24} {'VERSION':<9} {'TASK':<24} {'FRAMEWORK':<14} KEY METRIC")
    for stored in _sorted(scan.models):
        manifest = stored.manifest
        shown = _key_metric(manifest)
        print(
            f"{manifest.name:<24} {manifest.version:<9} {manifest.task:<24} "
            f"{manifest.framework:<14} {shown}"
        )
    return 0


def _key_metric(manifest: ModelManifest) -> str:
    """The first headline figure, named with the data set it was measured on when known."""
    measured = manifest.headline_evaluation()
    if measured is not None:
        name, value = next(iter(measured.metrics.items()))
        return f"{name}={value:.3f} on {measured.dataset} ({measured.samples} samples)"
    metric = next(iter(manifest.metrics.items()), None)
    return f"{metric[0]}={metric[1]:.3f}" if metric else "-"


def _show(scan: StoreScan, ref: str) -> int:
    try:
        wanted = parse_model_ref(ref)
    except InvalidModelRefError as error:
        print(error, file=sys.stderr)
        return 2
    matches = [
        stored
        for stored in _sorted(scan.models)
        if wanted.matches(stored.manifest.name, stored.manifest.version)
    ]
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


def _seal(scan: StoreScan, refs: list[str], *, reseal: bool) -> int:
    if reseal and not refs:
        print("--reseal needs the versions it vouches for: name them", file=sys.stderr)
        return 2
    try:
        wanted = [parse_model_ref(ref) for ref in refs]
    except InvalidModelRefError as error:
        print(error, file=sys.stderr)
        return 2
    versions = [(s.manifest.name, s.manifest.version) for s in scan.models]
    versions += [(u.name, u.version) for u in scan.unreadable]
    if missing := [str(ref) for ref in wanted if not any(_chosen(v, [ref]) for v in versions)]:
        print(f"no model {', '.join(missing)} in the store", file=sys.stderr)
        return 1
    problems = 0
    for stored in _sorted(scan.models):
        manifest = stored.manifest
        if not _chosen((manifest.name, manifest.version), wanted):
            continue
        if manifest.manifest_sha256 == manifest_digest(manifest):
            print(f"{manifest.ref}: already sealed")
        elif manifest.manifest_sha256 is None or reseal:
            write_manifest(manifest, stored.model_dir)
            print(f"{manifest.ref}: {'sealed' if manifest.manifest_sha256 is None else 'resealed'}")
        else:
            problems += 1
            print(
                f"{manifest.ref}: FAILED: its content no longer matches its manifest_sha256; "
                f"left as it is (if the change is yours: seal --reseal {manifest.ref})"
            )
    for unreadable in scan.unreadable:
        if _chosen((unreadable.name, unreadable.version), wanted):
            problems += 1
            print(f"{unreadable.name}@{unreadable.version}: FAILED: cannot be read, so not sealed")
    return 1 if problems else 0


def _chosen(version: tuple[str, str], wanted: list[ModelRef]) -> bool:
    """Whether ``(name, version)`` is one of ``wanted`` (all of them when none is)."""
    return not wanted or any(ref.matches(*version) for ref in wanted)


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
