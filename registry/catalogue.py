"""The catalogue: every registered model version, by name, oldest first, and its state."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from ml.manifest import ModelManifest
from ml.runtime import ModelRuntime
from registry.errors import ModelNotFoundError
from registry.refs import ModelRef, version_sort_key
from registry.store import StoredModel


class ModelStatus(StrEnum):
    REGISTERED = "registered"
    LOADED = "loaded"
    FAILED = "failed"


@dataclass(eq=False)
class ModelEntry:
    """One registered model version and its runtime state."""

    manifest: ModelManifest
    model_dir: Path
    status: ModelStatus = ModelStatus.REGISTERED
    error: str | None = None
    runtime: ModelRuntime | None = None
    loaded_at: datetime | None = None
    load_seconds: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ref(self) -> str:
        return self.manifest.ref


class Catalogue:
    """The versions of each model, as scanned from the store; lookups only."""

    def __init__(self, models: Sequence[StoredModel]) -> None:
        versions: dict[str, list[ModelEntry]] = {}
        for stored in models:
            versions.setdefault(stored.manifest.name, []).append(
                ModelEntry(stored.manifest, stored.model_dir)
            )
        for entries in versions.values():
            entries.sort(key=lambda entry: version_sort_key(entry.manifest.version))
        self._versions = versions

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[ModelEntry]:
        """Every version of ``name``, oldest first; ``ModelNotFoundError`` if unknown."""
        try:
            return self._versions[name]
        except KeyError:
            raise ModelNotFoundError(f"model '{name}' is not registered") from None

    def entries(self) -> Iterator[ModelEntry]:
        for name in self.names():
            yield from self._versions[name]

    def find(self, ref: ModelRef) -> ModelEntry:
        """The version ``ref`` names; without a version, the latest."""
        versions = self.versions(ref.name)
        if ref.version is None:
            return versions[-1]
        for entry in versions:
            if entry.manifest.version == ref.version:
                return entry
        known = ", ".join(entry.manifest.version for entry in versions)
        raise ModelNotFoundError(
            f"model '{ref.name}' has no version '{ref.version}' (versions: {known})"
        )

    def older_versions(self, entry: ModelEntry) -> Iterator[ModelEntry]:
        """The versions before ``entry``, newest first."""
        versions = self._versions[entry.manifest.name]
        yield from reversed(versions[: versions.index(entry)])
