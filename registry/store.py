"""Scanning the model store: ``<root>/<name>/<version>/manifest.json``, manifests only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ml.manifest import MANIFEST_FILENAME, ModelManifest, read_manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredModel:
    """One model version found in the store: its manifest and its folder."""

    manifest: ModelManifest
    model_dir: Path


@dataclass(slots=True)
class StoreScan:
    """What a scan found: the usable manifests and a line for every one it skipped."""

    models: list[StoredModel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def scan_store(root: Path) -> StoreScan:
    """Read every manifest under ``root``; a bad one is logged, reported and skipped.

    Folders whose name starts with ``_`` or ``.`` hold shared data (evaluation sets), not models.
    """
    scan = StoreScan()
    if not root.is_dir():
        scan.problems.append(f"model store {root} does not exist")
        return scan
    for path in sorted(root.glob(f"*/*/{MANIFEST_FILENAME}")):
        if path.parent.parent.name.startswith(("_", ".")):
            continue
        _read_one(path, scan)
    return scan


def _read_one(path: Path, scan: StoreScan) -> None:
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError, ValidationError) as error:
        logger.exception("Skipping unreadable manifest %s", path)
        scan.problems.append(f"{path}: {_describe(error)}")
        return
    version_dir, name_dir = path.parent.name, path.parent.parent.name
    if (manifest.name, manifest.version) != (name_dir, version_dir):
        problem = f"{path}: manifest says {manifest.ref} but lies in {name_dir}/{version_dir}"
        logger.error("Skipping manifest: %s", problem)
        scan.problems.append(problem)
        return
    scan.models.append(StoredModel(manifest, path.parent))


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'manifest'}: {issue['msg']}"
            for issue in error.errors()
        )
    return str(error) or type(error).__name__
