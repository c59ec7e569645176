"""The sample a user packages a model with: its input schema, example and rows.

A CSV or Parquet file of the model's input columns (and the target, to measure it). Each column
becomes a feature: integers and numbers with the sample's range, strings with the sample's
categories, nullable where the sample has a missing value. The server refuses what the sample
did not show, so the sample should cover what requests will send (the training set does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api import types

from ml.errors import InvalidInputError
from ml.manifest import CategoricalFeature, Feature, NumericFeature, TabularInput, sha256_file
from ml.packaging.errors import PackagingError
from ml.tabular import TabularValidator

_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
}


@dataclass(frozen=True)
class Sample:
    """The sample's feature columns (in the model's order), its labels, and its file."""

    features: pd.DataFrame
    target: pd.Series | None
    path: Path
    sha256: str
    ignored: list[str]
    """Columns that are neither a feature nor the target."""


def read_sample(path: Path) -> pd.DataFrame:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise PackagingError(f"sample {path} is not a .csv or .parquet file")
    if not path.is_file():
        raise PackagingError(f"sample {path} does not exist")
    try:
        frame = reader(path)
    except Exception as error:  # pandas and pyarrow raise many kinds for a bad file
        raise PackagingError(f"cannot read sample {path}: {error}") from error
    if frame.empty:
        raise PackagingError(f"sample {path} holds no rows: give rows the model can predict")
    frame.columns = [str(column) for column in frame.columns]
    return frame


def split_sample(
    frame: pd.DataFrame, path: Path, features: list[str], target: str | None
) -> Sample:
    """The ``features`` columns and the ``target`` column of the sample, checked."""
    columns = list(frame.columns)
    if target is not None and target not in columns:
        raise PackagingError(
            f"sample {path.name} has no target column {target!r} (its columns: "
            f"{', '.join(columns)}): name the label column with --target, or leave it out"
        )
    if target is not None and target in features:
        raise PackagingError(f"--target {target!r} is one of the model's input columns")
    missing = [name for name in features if name not in columns]
    if missing:
        raise PackagingError(
            f"sample {path.name} lacks the model's input columns {', '.join(missing)}: "
            "give a sample with every column the model was fitted on"
        )
    labels = frame[target] if target is not None else None
    if labels is not None and labels.isna().any():
        raise PackagingError(f"the target column {target!r} has missing labels: drop those rows")
    ignored = [name for name in columns if name not in features and name != target]
    return Sample(frame[features], labels, path, sha256_file(path), ignored)


def sample_schema(frame: pd.DataFrame) -> TabularInput:
    """One feature per column; the first row is the example."""
    features = [_feature(frame[name]) for name in frame.columns]
    first = frame.iloc[0]
    example = {feature.name: _json_value(first[feature.name], feature) for feature in features}
    return TabularInput(features=features, example=example)


def sample_rows(frame: pd.DataFrame, schema: TabularInput) -> list[dict[str, object]]:
    """Every row as a request sends it (JSON values, null for missing), then validated."""
    columns = {
        feature.name: [_json_value(value, feature) for value in frame[feature.name]]
        for feature in schema.features
    }
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    try:
        return TabularValidator(schema).validate(rows, field_prefix="rows")
    except InvalidInputError as error:
        raise PackagingError(f"the sample does not fit its own schema: {error}") from error


def _feature(column: pd.Series) -> Feature:
    name = str(column.name)
    values = column.dropna()
    nullable = bool(len(values) < len(column))
    if values.empty:
        raise PackagingError(f"column {name!r} has no value in the sample: give one at least")
    if types.is_bool_dtype(column):
        raise PackagingError(
            f"column {name!r} is boolean, which a request cannot send as a category: "
            "store it as 0/1 or as strings, and fit the model on that"
        )
    if types.is_integer_dtype(column) or types.is_float_dtype(column):
        is_integer = types.is_integer_dtype(column)
        if not is_integer and not all(math.isfinite(value) for value in values):
            raise PackagingError(f"column {name!r} holds an infinity, which JSON cannot send")
        cast = int if is_integer else float
        return NumericFeature(
            name=name,
            type="integer" if is_integer else "number",
            minimum=cast(values.min()),
            maximum=cast(values.max()),
            nullable=nullable,
        )
    if all(isinstance(value, str) for value in values):
        categories = sorted(set(values))
        return CategoricalFeature(
            name=name, type="category", categories=categories, nullable=nullable
        )
    raise PackagingError(
        f"column {name!r} is of type {column.dtype} (or mixes types), which a request cannot "
        "send: give numbers or strings"
    )


def _json_value(value: Any, feature: Feature) -> object:
    if pd.isna(value):
        return None
    if isinstance(feature, CategoricalFeature):
        return str(value)
    return int(value) if feature.type == "integer" else float(value)
