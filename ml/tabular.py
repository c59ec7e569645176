"""Request validation of tabular rows, driven by the model's manifest.

This is the per-request hot path of the server: the checks are compiled once per model
into plain closures, and a row is validated with dict look-ups and ``type`` tests only.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Sequence

from ml.errors import InvalidInputError
from ml.manifest import CategoricalFeature, NumericFeature, TabularInput

logger = logging.getLogger(__name__)

MISSING_FEATURE = "required feature is missing"
UNKNOWN_FEATURE = "unknown feature (not in the model's input schema)"

_MISSING = object()
_PREVIEW_CHARS = 40


class _Rejected(Exception):
    """Raised by a feature check; carries the message for the client."""


Check = Callable[[object], object]
"""Returns the normalised value, or raises ``_Rejected`` with what was expected."""


def describe(value: object) -> str:
    """A short, JSON-flavoured description of a received value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    text = repr(value)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def _format_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _range_message(feature: NumericFeature) -> str:
    low, high = feature.minimum, feature.maximum
    if low is not None and high is not None:
        return f"must be between {_format_bound(low)} and {_format_bound(high)}"
    if low is not None:
        return f"must be at least {_format_bound(low)}"
    if high is not None:
        return f"must be at most {_format_bound(high)}"
    return "must be a finite number"


def _bounds(feature: NumericFeature, unbounded: float) -> tuple[float, float]:
    low = -unbounded if feature.minimum is None else feature.minimum
    high = unbounded if feature.maximum is None else feature.maximum
    return low, high


def _integer_check(feature: NumericFeature) -> Check:
    low, high = _bounds(feature, math.inf)
    out_of_range = _range_message(feature)

    def check_integer(value: object) -> object:
        # Exact type tests: bool is an int subclass, and true/false are not numbers.
        if type(value) is int and low <= value <= high:
            return value
        if type(value) is float and value.is_integer():
            value = int(value)  # JSON clients may send 3.0 for 3
            if low <= value <= high:
                return value
        if type(value) is int:
            raise _Rejected(f"{out_of_range}, got {describe(value)}")
        raise _Rejected(f"expected an integer, got {describe(value)}")

    return check_integer


def _number_check(feature: NumericFeature) -> Check:
    # Finite default bounds, so that the one range test also refuses infinities.
    low, high = _bounds(feature, sys.float_info.max)
    out_of_range = _range_message(feature)

    def check_number(value: object) -> object:
        if (type(value) is int or type(value) is float) and low <= value <= high:
            return value  # NaN fails every comparison; infinities fall outside the bounds
        if (type(value) is float and math.isfinite(value)) or type(value) is int:
            raise _Rejected(f"{out_of_range}, got {describe(value)}")
        raise _Rejected(f"expected a finite number, got {describe(value)}")

    return check_number


def _category_check(feature: CategoricalFeature) -> Check:
    allowed = frozenset(feature.categories)
    expected = "expected one of " + ", ".join(sorted(allowed))

    def check_category(value: object) -> object:
        # The str test comes first: an unhashable value would break the set look-up.
        if type(value) is str and value in allowed:
            return value
        if type(value) is str:
            raise _Rejected(f"unknown category {describe(value)}; {expected}")
        raise _Rejected(f"{expected}, got {describe(value)}")

    return check_category


def _nullable(check: Check) -> Check:
    """``check``, letting ``null`` through as the missing value the model imputes."""

    def check_or_null(value: object) -> object:
        return None if value is None else check(value)

    return check_or_null


def _value_check(feature: NumericFeature | CategoricalFeature) -> Check:
    if isinstance(feature, CategoricalFeature):
        return _category_check(feature)
    if feature.type == "integer":
        return _integer_check(feature)
    return _number_check(feature)


def _feature_check(feature: NumericFeature | CategoricalFeature) -> Check:
    check = _value_check(feature)
    return _nullable(check) if feature.nullable else check


class TabularValidator:
    """Validates and normalises rows of features against one model's ``TabularInput``.

    Build it once per model; ``validate`` is then cheap enough to run on every request.
    """

    def __init__(self, schema: TabularInput) -> None:
        self.schema = schema
        self.feature_names = tuple(feature.name for feature in schema.features)
        self._known_names = frozenset(self.feature_names)
        self._checks: tuple[tuple[str, Check], ...] = tuple(
            (feature.name, _feature_check(feature)) for feature in schema.features
        )

    def validate(
        self,
        rows: Sequence[object],
        field_prefix: str = "",
    ) -> list[dict[str, object]]:
        """Check every row; return them normalised, with features in schema order.

        Problem keys name the field: with ``field_prefix="instances"`` they read
        ``instances[3].Age`` (and ``instances[3]`` for a row that is not an object). With no
        prefix a single row gives bare names (``Age``, ``body``), several give ``[3].Age``.
        All problems of all rows are collected, then raised as one ``InvalidInputError``.
        """
        problems: dict[str, str] = {}
        single = not field_prefix and len(rows) == 1
        normalised = []
        for index, row in enumerate(rows):
            row_label = "" if single else f"{field_prefix}[{index}]"
            normalised.append(self._validate_row(row, row_label, problems))
        if problems:
            raise InvalidInputError(problems)
        return normalised

    def _validate_row(
        self,
        row: object,
        row_label: str,
        problems: dict[str, str],
    ) -> dict[str, object]:
        if not isinstance(row, dict):
            problems[row_label or "body"] = f"expected an object of features, got {describe(row)}"
            return {}
        field_prefix = f"{row_label}." if row_label else ""
        clean: dict[str, object] = {}
        present = 0
        for name, check in self._checks:
            value = row.get(name, _MISSING)
            if value is _MISSING:
                problems[field_prefix + name] = MISSING_FEATURE
                continue
            present += 1
            try:
                clean[name] = check(value)
            except _Rejected as rejected:
                problems[field_prefix + name] = str(rejected)
        # Only a row with more keys than known features present can hold unknown ones.
        if len(row) > present:
            for key in row:
                if key not in self._known_names:
                    problems[f"{field_prefix}{key}"] = UNKNOWN_FEATURE
        return clean
