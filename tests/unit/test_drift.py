"""PSI and reference profiles (ml/drift.py): the figures drift alerts are raised on."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ml.drift import (
    OTHER,
    PSI_ALERT,
    PSI_WARN,
    CategoricalProfile,
    NumericProfile,
    build_profile,
    feature_psi,
    labels_psi,
    psi,
    read_profile,
    write_profile,
)
from ml.manifest import TabularInput
from tests.factories import tabular_input


def _schema() -> TabularInput:
    return tabular_input()


def _rows(count: int, seed: int, age_shift: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    schema = _schema()
    rows = []
    for _ in range(count):
        row: dict[str, object] = {}
        for feature in schema.features:
            if feature.type == "category":
                row[feature.name] = rng.choice(feature.categories)
            else:
                row[feature.name] = rng.randint(25, 55) + age_shift
        rows.append(row)
    return rows


def test_the_same_distribution_has_no_drift_and_a_shifted_one_crosses_the_alert() -> None:
    reference = build_profile(_schema(), _rows(2000, seed=1), ["No"] * 1600 + ["Yes"] * 400, "x")
    numeric = next(name for name, p in reference.features.items() if p.type == "numeric")
    same = [row[numeric] for row in _rows(1000, seed=2)]
    older = [row[numeric] for row in _rows(1000, seed=2, age_shift=20)]
    assert feature_psi(reference.features[numeric], same) < PSI_WARN
    assert feature_psi(reference.features[numeric], older) > PSI_ALERT
    assert labels_psi(reference.labels, ["No"] * 80 + ["Yes"] * 20) == pytest.approx(0)
    assert labels_psi(reference.labels, ["No"] * 30 + ["Yes"] * 70) > PSI_ALERT


def test_numeric_bins_are_deciles_and_few_values_get_a_bin_each() -> None:
    profile = build_profile(_schema(), _rows(1000, seed=3), ["No"] * 1000, "x")
    for feature in profile.features.values():
        if isinstance(feature, NumericProfile):
            assert feature.edges == sorted(set(feature.edges))
            assert len(feature.fractions) == len(feature.edges) + 2  # bins, then missing
            assert sum(feature.fractions) == pytest.approx(1)
    levels = build_profile(
        TabularInput.model_validate(
            {
                "features": [{"name": "JobLevel", "type": "integer", "minimum": 1, "maximum": 5}],
                "example": {"JobLevel": 1},
            }
        ),
        [{"JobLevel": level} for level in [1, 1, 1, 2, 2, 3, 4, 5] * 10],
        ["No"] * 80,
        "x",
    ).features["JobLevel"]
    assert isinstance(levels, NumericProfile)
    assert levels.edges == [2, 3, 4, 5]
    assert levels.fractions[:5] == pytest.approx([3 / 8, 2 / 8, 1 / 8, 1 / 8, 1 / 8])


def test_unseen_categories_and_missing_values_count_as_drift_not_as_errors() -> None:
    reference = CategoricalProfile(fractions={"a": 0.5, "b": 0.5})
    assert feature_psi(reference, ["a", "b"] * 50) == pytest.approx(0)
    assert feature_psi(reference, ["c", None] * 50) > PSI_ALERT
    assert feature_psi(
        CategoricalProfile(fractions={"a": 0.9, OTHER: 0.1}), ["a"] * 9 + [None]
    ) == (pytest.approx(0))
    assert psi([0.5, 0.5], [1.0, 0.0]) > PSI_ALERT  # an empty bin is finite


def test_a_profile_is_read_back_only_when_its_sha256_matches(tmp_path: Path) -> None:
    profile = build_profile(_schema(), _rows(50, seed=4), ["No"] * 50, "the sample")
    sha256 = write_profile(profile, tmp_path)
    path = tmp_path / "reference_profile.json"
    assert read_profile(path, sha256) == profile
    path.write_text(path.read_text().replace('"rows": 50', '"rows": 51'))
    with pytest.raises(ValueError, match="sha256"):
        read_profile(path, sha256)
