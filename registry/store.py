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


@dataclass(frozen=True, slots=True)
class UnreadableManifest:
    """A model version the scan skipped: its folders name it, its manifest could not be read.

    Kept by name and version so that a request for it, or for a default model that has
    nothing else, can say why it cannot be served instead of calling the model unknown.
    """

    name: str
    version: str
    path: Path
    error: str


@dataclass(slots=True)
class StoreScan:
    """What a scan found: the usable manifests and a line for every one it skipped."""

    models: list[StoredModel] = field(default_factory=list)
    unreadable: list[UnreadableManifest] = field(default_factory=list)
    """The skipped manifests, by the model version their folders name."""
    store_problems: list[str] = field(default_factory=list)
    """What is wrong with the store itself rather than with one manifest (it does not exist)."""

    @property
    def problems(self) -> list[str]:
        """A line for every problem: the store's, then one per skipped manifest."""
        skipped = [f"{unreadable.path}: {unreadable.error}" for unreadable in self.unreadable]
        return self.store_problems + skipped


def scan_store(root: Path) -> StoreScan:
    """Read every manifest under ``root``; a bad one is logged, reported and skipped.

    Folders whose name starts with ``_`` or ``.`` hold shared data (evaluation sets), not models.
    """
    scan = StoreScan()
    if not root.is_dir():
        scan.store_problems.append(f"model store {root} does not exist")
        return scan
    for path in sorted(root.glob(f"*/*/{MANIFEST_FILENAME}")):
        if path.parent.parent.name.startswith(("_", ".")):
            continue
        _read_one(path, scan)
    return scan


def _read_one(path: Path, scan: StoreScan) -> None:
    version_dir, name_dir = path.parent.name, path.parent.parent.name
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError, ValidationError) as error:
        logger.exception("Skipping unreadable manifest %s", path)
        scan.unreadable.append(UnreadableManifest(name_dir, version_dir, path, _describe(error)))
        return
    if (manifest.name, manifest.version) != (name_dir, version_dir):
        error_text = f"manifest says {manifest.ref} but lies in {name_dir}/{version_dir}"
        logger.error("Skipping manifest: %s: %s", path, error_text)
        scan.unreadable.append(UnreadableManifest(name_dir, version_dir, path, error_text))
        return
    scan.models.append(StoredModel(manifest, path.parent))


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'manifest'}: {issue['msg']}"
            for issue in error.errors()
        )
    return str(error) or type(error).__name__
