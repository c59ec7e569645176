"""What the registry tells the outside world about (the server turns it into metrics)."""

from __future__ import annotations

from typing import Protocol

from ml.manifest import ModelManifest


class RegistryListener(Protocol):
    """Told about lifecycle events: loads, unloads, load failures and fallbacks."""

    def model_loaded(self, manifest: ModelManifest, seconds: float) -> None: ...

    def model_unloaded(self, manifest: ModelManifest) -> None: ...

    def model_failed(self, manifest: ModelManifest, error: str) -> None: ...

    def fallback_used(
        self, requested: ModelManifest, served: ModelManifest, reason: str
    ) -> None: ...


class SilentListener:
    """A listener that ignores every event (libraries and tests that need no metrics)."""

    def model_loaded(self, manifest: ModelManifest, seconds: float) -> None:
        """Nothing to record."""

    def model_unloaded(self, manifest: ModelManifest) -> None:
        """Nothing to record."""

    def model_failed(self, manifest: ModelManifest, error: str) -> None:
        """Nothing to record."""

    def fallback_used(self, requested: ModelManifest, served: ModelManifest, reason: str) -> None:
        """Nothing to record."""
