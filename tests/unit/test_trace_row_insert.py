"""The trace row's INSERT converts values exactly as SQLAlchemy's own bind processors do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from db.engine import make_engine
from db.tables import Outcome, Prediction
from db.traces import TraceRow, _converter, make_trace_writer

SAMPLES: dict[str, list[Any]] = {
    "received_at": [
        datetime(2026, 12, 1, 8, 17, 7, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    ],
    "completed_at": [datetime(2026, 12, 1, 8, 17, 7, 999999, tzinfo=UTC), None],
    "input": [{"Age": 30, "Name": "é\u0000x", "nested": [1, 2.5, None]}, None, [1, 2]],
    "output": [[{"label": "No", "probabilities": {"No": 0.9, "Yes": 0.1}}], None],
    "is_fallback": [True, False],
    "latency_ms": [0.25, None],
}


def test_every_converter_gives_sqlalchemys_value(database_url: str) -> None:
    dialect = make_engine(database_url).dialect
    for column in Prediction.__table__.columns:  # type: ignore[attr-defined]
        reference = column.type.dialect_impl(dialect).bind_processor(dialect)
        converter = _converter(column, dialect)
        for value in SAMPLES.get(column.name, ["text"]):
            expected = reference(value) if reference else value
            got = converter(value) if converter else value
            assert repr(got) == repr(expected), column.name


def test_a_written_row_reads_back_through_the_orm(engine: Engine) -> None:
    writer = make_trace_writer(engine)
    writer.start()
    received = datetime(2026, 12, 1, 8, 17, 7, 123456, tzinfo=UTC)
    row = TraceRow(
        "t1",
        "r1",
        "v2",
        received,
        received,
        "attrition-logreg",
        "tabular",
        {"Age": 30},
        Outcome.OK,
        model_name="attrition-logreg",
        model_version="1",
        output=[{"label": "No"}],
        label="No",
        latency_ms=0.5,
    )

    async def record() -> None:
        await writer.record(row)

    asyncio.run(record())
    writer.close()
    with Session(engine) as session:
        stored = session.exec(select(Prediction)).one()
    identity = (stored.id, stored.request_id, stored.protocol, stored.outcome)
    assert identity == ("t1", "r1", "v2", "ok")
    assert stored.received_at.replace(tzinfo=UTC) == received
    assert stored.input == {"Age": 30} and stored.output == [{"label": "No"}]
    assert stored.is_fallback is False and stored.latency_ms == 0.5
