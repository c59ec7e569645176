"""Artifact integrity: the file on disk must be the one its manifest describes."""

from pathlib import Path

from ml.manifest import ModelManifest, sha256_file
from registry.errors import ArtifactHashMismatchError, ModelLoadError


def verify_artifact(manifest: ModelManifest, model_dir: Path) -> None:
    """Raise ``ModelLoadError`` unless every artifact exists and matches its sha256."""
    for artifact, expected in manifest.artifact_files():
        path = model_dir / artifact
        if not path.is_file():
            raise ModelLoadError(f"artifact {artifact} of {manifest.ref} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactHashMismatchError(
                f"artifact {artifact} of {manifest.ref} has sha256 {actual[:12]}…, "
                f"its manifest expects {expected[:12]}…; refusing to load it"
            )
