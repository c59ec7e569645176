"""The manifest's link to a stored data set, and data set references on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.datasets import parse_dataset_ref
from ml.manifest import DatasetRef, manifest_digest, read_manifest, write_manifest
from tests.helpers import MODELS_DIR

BUNDLED = MODELS_DIR / "attrition-logreg" / "1"
SHA256 = "22db7ee590589479392aeb9f44b9e11ea8d9c2458cc0fd942e8c233d95393d4b"


def test_a_manifest_without_a_dataset_keeps_its_bytes_and_digest(tmp_path: Path) -> None:
    manifest = read_manifest(BUNDLED / "manifest.json")
    assert manifest.training.data.dataset is None

    write_manifest(manifest, tmp_path)

    assert (tmp_path / "manifest.json").read_bytes() == (BUNDLED / "manifest.json").read_bytes()


def test_a_dataset_reference_is_written_and_sealed(tmp_path: Path) -> None:
    manifest = read_manifest(BUNDLED / "manifest.json")
    reference = DatasetRef(name="attrition", version=1, sha256=SHA256, split="heldout")
    data = manifest.training.data.model_copy(update={"dataset": reference})
    training = manifest.training.model_copy(update={"data": data})

    write_manifest(manifest.model_copy(update={"training": training}), tmp_path)

    written = read_manifest(tmp_path / "manifest.json")
    assert written.training.data.dataset == reference
    assert written.manifest_sha256 == manifest_digest(written) != manifest.manifest_sha256
    stored = json.loads((tmp_path / "manifest.json").read_text())
    assert stored["training"]["data"]["dataset"]["version"] == 1


@pytest.mark.parametrize(
    ("ref", "parsed"), [("attrition", ("attrition", None)), ("attrition@2", ("attrition", 2))]
)
def test_a_dataset_is_named_with_or_without_its_version(
    ref: str, parsed: tuple[str, int | None]
) -> None:
    assert parse_dataset_ref(ref) == parsed


@pytest.mark.parametrize("ref", ["", "@1", "attrition@latest", "attrition@"])
def test_a_bad_dataset_reference_is_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="NAME or NAME@VERSION"):
        parse_dataset_ref(ref)
