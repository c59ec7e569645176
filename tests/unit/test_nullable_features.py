"""Nullable features: ``null`` is a missing value where the manifest says so, and only there."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.errors import InvalidInputError
from ml.evaluation_data import load_samples
from ml.manifest import CategoricalFeature, NumericFeature, canonical_manifest_json
from ml.tabular import TabularValidator
from tests.factories import make_manifest, tabular_input

FEATURES = [
    NumericFeature(name="age", type="integer", minimum=18, maximum=99, nullable=True),
    CategoricalFeature(name="city", type="category", categories=["Lyon", "Nice"], nullable=True),
    NumericFeature(name="income", type="number", minimum=0),
]
SCHEMA = tabular_input(FEATURES, example={"age": None, "city": "Nice", "income": 10.0})


def test_null_passes_for_nullable_features_only() -> None:
    validator = TabularValidator(SCHEMA)
    rows = [{"age": None, "city": None, "income": 1.5}, {"age": 30, "city": "Lyon", "income": 2}]
    assert validator.validate(rows, "rows") == rows
    with pytest.raises(InvalidInputError) as refused:
        validator.validate([{"age": 7, "city": "Paris", "income": None}])
    assert refused.value.problems == {
        "age": "must be between 18 and 99, got 7",
        "city": "unknown category 'Paris'; expected one of Lyon, Nice",
        "income": "expected a finite number, got null",
    }


def test_a_feature_that_is_not_nullable_keeps_its_digest() -> None:
    # The field is left out of the canonical JSON at its default: old manifests stay valid.
    assert b"nullable" not in canonical_manifest_json(make_manifest())
    assert b'"nullable":true' in canonical_manifest_json(make_manifest(input=SCHEMA))


def test_an_empty_cell_of_an_evaluation_csv_is_a_missing_value(tmp_path: Path) -> None:
    path = tmp_path / "heldout.csv"
    path.write_text("age,city,income,label\n,Nice,3.5,yes\n40,,0,no\n")
    manifest = make_manifest(input=SCHEMA)
    samples = load_samples(manifest, path, max_audio_seconds=1)
    assert [s.instance for s in samples] == [
        {"age": None, "city": "Nice", "income": 3.5},
        {"age": 40, "city": None, "income": 0.0},
    ]
