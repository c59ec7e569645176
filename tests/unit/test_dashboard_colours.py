"""Each model keeps one colour on every chart, whatever order its traces come in."""

from __future__ import annotations

import pandas as pd

from dashboard import charts
from dashboard.colours import UNKNOWN_COLOUR, model_colours, paint


def _frame(models: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "received_at": pd.to_datetime(["2026-01-01T10:00:00Z"] * len(models), utc=True),
            "model": models,
            "label": ["Yes"] * len(models),
            "latency_ms": [1.0] * len(models),
        }
    )


def _trace_colours(figure: object) -> dict[str, str]:
    return {trace.name: trace.marker.color for trace in figure.data}  # type: ignore[attr-defined]


def test_a_model_has_one_colour_on_neighbouring_charts_and_unknown_is_grey() -> None:
    colours = model_colours(["attrition-logreg", "attrition-gbm", "instrument-cnn"])
    first = paint(charts.volume_chart(_frame(["attrition-logreg@1", "unknown"])), colours)
    second = paint(
        charts.latency_histogram(_frame(["attrition-gbm@1", "attrition-logreg@1"])), colours
    )

    logreg = _trace_colours(first)["attrition-logreg@1"]
    assert _trace_colours(second)["attrition-logreg@1"] == logreg
    assert _trace_colours(second)["attrition-gbm@1"] != logreg
    assert _trace_colours(first)["unknown"] == UNKNOWN_COLOUR
    # A model's colour depends on the registry, not on which charts came first.
    assert model_colours(["instrument-cnn", "attrition-gbm", "attrition-logreg"]) == colours
