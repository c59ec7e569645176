"""Artifact integrity: the file on disk must be the one its manifest describes."""

import hashlib
from pathlib import Path

from ml.manifest import ModelManifest
from registry.errors import ArtifactHashMismatchError, ModelLoadError

_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """sha256 read in chunks, so a large checkpoint never sits in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as artifact:
        while chunk := artifact.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


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
