"""Integrity: the manifest is the one that was packaged, the files on disk the ones it describes."""

from pathlib import Path

from ml.manifest import ModelManifest, manifest_digest, sha256_file
from registry.errors import ArtifactHashMismatchError, ManifestDigestError, ModelLoadError


def verify_manifest(manifest: ModelManifest) -> None:
    """Raise ``ManifestDigestError`` unless ``manifest_sha256`` matches the manifest's content.

    A manifest without a digest is refused too: the training scripts, the tests' factories
    and ``python -m registry seal`` all write one, and accepting none would let anyone who
    drops the field change the rest unnoticed.
    """
    recorded = manifest.manifest_sha256
    if recorded is None:
        raise ManifestDigestError(
            f"manifest of {manifest.ref} has no digest (manifest_sha256): repackage it or run "
            f"`python -m registry seal {manifest.ref}`; refusing to load it"
        )
    actual = manifest_digest(manifest)
    if actual != recorded:
        raise ManifestDigestError(
            f"manifest of {manifest.ref} was changed since it was written: its content has "
            f"sha256 {actual[:12]}…, its manifest_sha256 says {recorded[:12]}…; refusing to "
            f"load it (repackage it, or if the change is deliberate run "
            f"`python -m registry seal --reseal {manifest.ref}`)"
        )


def verify_artifact(manifest: ModelManifest, model_dir: Path) -> None:
    """Raise ``ModelLoadError`` unless the manifest and every artifact match their sha256.

    The manifest first: the artifact hashes it records are only worth what it is.
    """
    verify_manifest(manifest)
    verify_artifact_files(manifest, model_dir)


def verify_artifact_files(manifest: ModelManifest, model_dir: Path) -> None:
    """Raise ``ModelLoadError`` unless every artifact in ``model_dir`` matches its sha256.

    Only the files: the caller has already checked the manifest with ``verify_manifest``
    (the recorded hashes are only worth what the manifest is); ``verify_artifact`` does both.
    """
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
