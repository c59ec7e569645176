"""Retraining the attrition models writes their drift reference beside them, as packaging does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ml.drift import PROFILE_FILENAME
from ml.manifest import MANIFEST_FILENAME, read_manifest
from ml.training import attrition
from registry.__main__ import main as registry_main

# The default candidate with its first grid entry only: the profile does not depend on it.
QUICK = [replace(attrition.CANDIDATES[0], grid=attrition.CANDIDATES[0].grid[:1])]


def test_a_trained_model_carries_the_profile_of_its_training_rows(tmp_path: Path) -> None:
    with attrition.dataset_session(f"sqlite:///{tmp_path / 'data.db'}") as session:
        (model_dir,) = attrition.train_all(tmp_path / "models", session, "attrition", QUICK)
    manifest = read_manifest(model_dir / MANIFEST_FILENAME)
    assert manifest.reference_profile is not None
    assert manifest.reference_profile.file == PROFILE_FILENAME
    profile = json.loads((model_dir / PROFILE_FILENAME).read_text())
    assert profile["source"] == attrition.PROFILE_SOURCE
    assert profile["rows"] == 1176  # the 80% training split of the 1,470 rows
    assert set(profile["labels"]) <= {"No", "Yes"}
    assert registry_main(["--models-dir", str(tmp_path / "models"), "validate"]) == 0
