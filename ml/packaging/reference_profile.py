"""The reference profile a model version is packaged with, for drift (``ml.drift``).

``registry add`` profiles its sample; a version packaged before profiles existed gets one
from rows given here (the bundled attrition models: their training split):

    python -m ml.packaging.reference_profile models/attrition-logreg/1 --rows train.csv \
        --source "the training split"

which writes ``reference_profile.json`` beside the manifest and seals the manifest again.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ml.drift import PROFILE_FILENAME, build_profile, write_profile
from ml.manifest import (
    MANIFEST_FILENAME,
    ModelManifest,
    ReferenceProfileFile,
    TabularInput,
    read_manifest,
    write_manifest,
)
from ml.packaging.sample import read_sample, sample_rows
from ml.runtime import runtime_class


def with_reference_profile(
    manifest: ModelManifest,
    rows: Sequence[dict[str, object]],
    labels: Sequence[str],
    source: str,
    model_dir: Path,
) -> ModelManifest:
    """``manifest`` naming the profile of ``rows`` and their predicted ``labels``, written
    into ``model_dir``; unchanged for an audio model (its inputs are files)."""
    if not isinstance(manifest.input, TabularInput):
        return manifest
    profile = build_profile(manifest.input, rows, labels, source)
    sha256 = write_profile(profile, model_dir)
    return manifest.model_copy(
        update={"reference_profile": ReferenceProfileFile(file=PROFILE_FILENAME, sha256=sha256)}
    )


def profile_stored_model(model_dir: Path, rows_file: Path, source: str) -> ModelManifest:
    """Profile ``rows_file`` as the stored model predicts it, and seal its manifest again."""
    manifest = read_manifest(model_dir / MANIFEST_FILENAME)
    if not isinstance(manifest.input, TabularInput):
        raise SystemExit(f"{manifest.ref} takes audio: only tabular models are profiled")
    rows = sample_rows(
        read_sample(rows_file)[[feature.name for feature in manifest.input.features]],
        manifest.input,
    )
    runtime = runtime_class(manifest.framework)(manifest, model_dir)
    runtime.load()
    labels = [prediction.label for prediction in runtime.predict(rows)]
    profiled = with_reference_profile(manifest, rows, labels, source, model_dir)
    write_manifest(profiled, model_dir)
    return profiled


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--rows", type=Path, required=True, help="CSV or Parquet of features")
    parser.add_argument("--source", required=True, help="where the rows come from")
    args = parser.parse_args(argv)
    manifest = profile_stored_model(args.model_dir, args.rows, args.source)
    print(f"{manifest.ref}: {PROFILE_FILENAME} written, manifest sealed again")


if __name__ == "__main__":
    main()
