"""Training data sets: versions stored by content hash, their rows, and their held-out splits.

The caller (``ml.training.datasets``) reads the source and hashes it; this module only stores
and reads back, so it needs neither pandas nor the data set's own package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.tables import Dataset, DatasetRow, DatasetSplit


class DatasetNotFoundError(LookupError):
    """No data set of this name (and version) is stored."""


@dataclass(frozen=True)
class DatasetVersion:
    id: int
    name: str
    version: int
    source: str
    sha256: str
    row_count: int
    columns: list[dict[str, str]]
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Split:
    name: str
    method: str
    train_rows: list[int]
    heldout_rows: list[int]


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """``attrition`` (the latest version) or ``attrition@2``, as (name, version)."""
    name, at, version = ref.partition("@")
    if not name or (at and not version.isdigit()):
        raise ValueError(f"a data set is NAME or NAME@VERSION (a number), not {ref!r}")
    return name, int(version) if version else None


def store_dataset(
    session: Session,
    *,
    name: str,
    source: str,
    sha256: str,
    columns: list[dict[str, str]],
    rows: Sequence[dict[str, Any]],
) -> tuple[DatasetVersion, bool]:
    """The version holding this content, and whether it was stored just now.

    The same content (sha256) is the same version; other content is the next version.
    """
    existing = _find(session, select(Dataset).where(Dataset.name == name, Dataset.sha256 == sha256))
    if existing is not None:
        return existing, False
    latest = session.exec(select(func.max(Dataset.version)).where(Dataset.name == name)).one()
    dataset = Dataset(
        name=name,
        version=(latest or 0) + 1,
        source=source,
        sha256=sha256,
        row_count=len(rows),
        columns=columns,
    )
    try:
        session.add(dataset)
        session.flush()
        session.execute(
            insert(DatasetRow),
            [{"dataset_id": dataset.id, "row_index": i, "data": row} for i, row in enumerate(rows)],
        )
        session.commit()
    except IntegrityError:
        # Another loader stored a version of this name meanwhile: this content, or other.
        session.rollback()
        found = _find(
            session, select(Dataset).where(Dataset.name == name, Dataset.sha256 == sha256)
        )
        if found is None:
            raise
        return found, False
    return _version(dataset), True


def get_dataset(session: Session, name: str, version: int | None = None) -> DatasetVersion:
    """The version asked for, or the latest one when ``version`` is None."""
    query = select(Dataset).where(Dataset.name == name)
    if version is None:
        query = query.order_by(col(Dataset.version).desc()).limit(1)
    else:
        query = query.where(Dataset.version == version)
    found = _find(session, query)
    if found is None:
        wanted = name if version is None else f"{name}@{version}"
        raise DatasetNotFoundError(f"no data set {wanted} in the database")
    return found


def dataset_rows(session: Session, dataset: DatasetVersion) -> list[dict[str, Any]]:
    """Every row of ``dataset``, in row-index order."""
    query = (
        select(DatasetRow.data)
        .where(DatasetRow.dataset_id == dataset.id)
        .order_by(col(DatasetRow.row_index))
    )
    return [dict(row) for row in session.exec(query).all()]


def get_split(session: Session, dataset: DatasetVersion, name: str) -> Split | None:
    found = session.get(DatasetSplit, (dataset.id, name))
    return None if found is None else _split(found)


def record_split(session: Session, dataset: DatasetVersion, split: Split) -> Split:
    """The split of ``split.name`` recorded for ``dataset``: ``split`` unless one was already.

    A recorded split is never replaced (models were evaluated on it): the first one wins,
    also against another training recording its own at the same moment.
    """
    recorded = get_split(session, dataset, split.name)
    if recorded is not None:
        return recorded
    session.add(
        DatasetSplit(
            dataset_id=dataset.id,
            name=split.name,
            method=split.method,
            train_rows=split.train_rows,
            heldout_rows=split.heldout_rows,
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        recorded = get_split(session, dataset, split.name)
        if recorded is None:
            raise
        return recorded
    return split


def _find(session: Session, query: Any) -> DatasetVersion | None:
    found = session.exec(query).first()
    return None if found is None else _version(found)


def _version(dataset: Dataset) -> DatasetVersion:
    assert dataset.id is not None
    return DatasetVersion(
        id=dataset.id,
        name=dataset.name,
        version=dataset.version,
        source=dataset.source,
        sha256=dataset.sha256,
        row_count=dataset.row_count,
        columns=list(dataset.columns),
        created_at=dataset.created_at,
    )


def _split(split: DatasetSplit) -> Split:
    return Split(
        name=split.name,
        method=split.method,
        train_rows=list(split.train_rows),
        heldout_rows=list(split.heldout_rows),
    )
