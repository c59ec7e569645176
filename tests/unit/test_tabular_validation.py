"""Request validation of tabular rows against a manifest's input schema."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ml.errors import InvalidInputError
from ml.manifest import CategoricalFeature, NumericFeature, TabularInput, read_manifest
from ml.tabular import MISSING_FEATURE, UNKNOWN_FEATURE, TabularValidator

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"

SCHEMA = TabularInput(
    features=[
        NumericFeature(name="Age", type="integer", minimum=18, maximum=100),
        CategoricalFeature(
            name="BusinessTravel",
            type="category",
            categories=["Non-Travel", "Travel_Frequently", "Travel_Rarely"],
        ),
        NumericFeature(name="Score", type="number", minimum=0, maximum=1.5),
        NumericFeature(name="Balance", type="number"),
        NumericFeature(name="Children", type="integer", minimum=0),
    ],
    example={
        "Age": 30,
        "BusinessTravel": "Non-Travel",
        "Score": 0.5,
        "Balance": -3.25,
        "Children": 2,
    },
)


@pytest.fixture
def validator() -> TabularValidator:
    return TabularValidator(SCHEMA)


def valid_row(**changes: object) -> dict[str, object]:
    return {**SCHEMA.example, **changes}


def problems_of(validator: TabularValidator, rows: list[object], prefix: str = "") -> dict:
    with pytest.raises(InvalidInputError) as raised:
        validator.validate(rows, field_prefix=prefix)
    return raised.value.problems


def test_valid_row_is_returned_in_schema_order(validator: TabularValidator) -> None:
    row = dict(reversed(list(valid_row().items())))

    (clean,) = validator.validate([row])

    assert clean == SCHEMA.example
    assert list(clean) == ["Age", "BusinessTravel", "Score", "Balance", "Children"]


def test_integral_float_is_normalised_to_int(validator: TabularValidator) -> None:
    (clean,) = validator.validate([valid_row(Age=42.0)])

    assert clean["Age"] == 42
    assert type(clean["Age"]) is int


def test_number_accepts_int_and_float_and_bounds(validator: TabularValidator) -> None:
    rows = [valid_row(Score=1), valid_row(Score=0.0), valid_row(Score=1.5, Balance=-1e300)]

    assert [row["Score"] for row in validator.validate(rows)] == [1, 0.0, 1.5]


def test_missing_feature(validator: TabularValidator) -> None:
    row = valid_row()
    del row["Age"]

    assert problems_of(validator, [row]) == {"Age": MISSING_FEATURE}


def test_unknown_feature(validator: TabularValidator) -> None:
    assert problems_of(validator, [valid_row(Salary=1000)]) == {"Salary": UNKNOWN_FEATURE}


def test_string_for_integer(validator: TabularValidator) -> None:
    assert problems_of(validator, [valid_row(Age="abc")]) == {
        "Age": "expected an integer, got 'abc'",
    }


@pytest.mark.parametrize("value", [2.5, math.nan, math.inf, None, [30], {"years": 30}])
def test_non_integers_for_integer(validator: TabularValidator, value: object) -> None:
    problem = problems_of(validator, [valid_row(Age=value)])["Age"]

    assert problem.startswith("expected an integer, got ")


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_number(validator: TabularValidator, value: bool) -> None:
    problems = problems_of(validator, [valid_row(Age=value, Score=value)])

    assert problems == {
        "Age": f"expected an integer, got {str(value).lower()}",
        "Score": f"expected a finite number, got {str(value).lower()}",
    }


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(validator: TabularValidator, value: float) -> None:
    problems = problems_of(validator, [valid_row(Score=value, Balance=value)])

    assert problems == {
        "Score": f"expected a finite number, got {value!r}",
        "Balance": f"expected a finite number, got {value!r}",
    }


def test_string_for_number(validator: TabularValidator) -> None:
    assert problems_of(validator, [valid_row(Score="0.5")]) == {
        "Score": "expected a finite number, got '0.5'",
    }


def test_out_of_range(validator: TabularValidator) -> None:
    problems = problems_of(validator, [valid_row(Age=7, Score=2.0, Children=-1)])

    assert problems == {
        "Age": "must be between 18 and 100, got 7",
        "Score": "must be between 0 and 1.5, got 2.0",
        "Children": "must be at least 0, got -1",
    }


def test_integral_float_out_of_range(validator: TabularValidator) -> None:
    assert problems_of(validator, [valid_row(Age=101.0)]) == {
        "Age": "must be between 18 and 100, got 101",
    }


def test_unknown_category(validator: TabularValidator) -> None:
    assert problems_of(validator, [valid_row(BusinessTravel="Often")]) == {
        "BusinessTravel": (
            "unknown category 'Often'; expected one of Non-Travel, Travel_Frequently, Travel_Rarely"
        ),
    }


@pytest.mark.parametrize("value", [3, None, ["Non-Travel"], {"a": 1}])
def test_non_string_category(validator: TabularValidator, value: object) -> None:
    problem = problems_of(validator, [valid_row(BusinessTravel=value)])["BusinessTravel"]

    assert problem.startswith("expected one of Non-Travel, Travel_Frequently, Travel_Rarely, got")


@pytest.mark.parametrize("row", [[1, 2], "Age=30", None, 42])
def test_single_row_that_is_not_an_object(validator: TabularValidator, row: object) -> None:
    problems = problems_of(validator, [row])

    assert list(problems) == ["body"]
    assert problems["body"].startswith("expected an object of features, got")


def test_all_problems_of_a_batch_are_reported(validator: TabularValidator) -> None:
    missing_age = valid_row()
    del missing_age["Age"]
    rows = [valid_row(), missing_age, "not a row", valid_row(Score=math.nan, Extra=1)]

    problems = problems_of(validator, rows, prefix="instances")

    assert problems == {
        "instances[1].Age": MISSING_FEATURE,
        "instances[2]": "expected an object of features, got 'not a row'",
        "instances[3].Score": "expected a finite number, got nan",
        "instances[3].Extra": UNKNOWN_FEATURE,
    }


def test_all_problems_of_one_row_are_reported(validator: TabularValidator) -> None:
    row = {"Age": "old", "BusinessTravel": "Often", "Score": -1, "Color": "red"}

    problems = problems_of(validator, [row])

    assert set(problems) == {"Age", "BusinessTravel", "Score", "Balance", "Children", "Color"}


def test_several_rows_without_prefix_are_indexed(validator: TabularValidator) -> None:
    problems = problems_of(validator, [valid_row(), valid_row(Age=7)])

    assert problems == {"[1].Age": "must be between 18 and 100, got 7"}


def test_batch_prefix_applies_to_a_single_row(validator: TabularValidator) -> None:
    problems = problems_of(validator, [valid_row(Age=7)], prefix="instances")

    assert list(problems) == ["instances[0].Age"]


def test_error_message_names_the_fields(validator: TabularValidator) -> None:
    with pytest.raises(InvalidInputError, match=r"Age: must be between 18 and 100, got 7"):
        validator.validate([valid_row(Age=7)])


def test_empty_batch_is_valid(validator: TabularValidator) -> None:
    assert validator.validate([]) == []


def test_long_values_are_shortened_in_messages(validator: TabularValidator) -> None:
    problem = problems_of(validator, [valid_row(Age="x" * 500)])["Age"]

    assert len(problem) < 80


@pytest.mark.parametrize("model", ["attrition-logreg", "attrition-gbm"])
def test_committed_manifest_examples_are_valid(model: str) -> None:
    manifest = read_manifest(MODELS_DIR / model / "1" / "manifest.json")
    validator = TabularValidator(manifest.input)

    (clean,) = validator.validate([manifest.input.example])

    assert clean == manifest.input.example
    assert len(clean) == 30
