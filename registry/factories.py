"""How the registry turns a manifest into a runtime: the framework's own, or the test mock."""

from __future__ import annotations

from pathlib import Path

from ml.manifest import ModelManifest
from ml.mock_runtime import MockRuntime
from ml.runtime import ModelRuntime, runtime_class
from registry.errors import ModelLoadError
from registry.loader import RuntimeFactory


def framework_runtimes(device: str) -> RuntimeFactory:
    """Real runtimes, chosen by the manifest's framework, placed on ``device``."""

    def make(manifest: ModelManifest, model_dir: Path) -> ModelRuntime:
        try:
            runtime_cls = runtime_class(manifest.framework)
        except KeyError:
            raise ModelLoadError(f"unknown framework {manifest.framework!r}") from None
        return runtime_cls(manifest, model_dir, device)

    return make


def mock_runtimes(manifest: ModelManifest, model_dir: Path) -> ModelRuntime:
    """The ``ENV=test`` stand-in: reads no artifact and imports no ML framework."""
    return MockRuntime(manifest, model_dir)
