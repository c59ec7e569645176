"""One colour per model, the same on every chart of every page.

Plotly colours traces in the order they come, so one model was blue on a chart and red on the
next. A model's colour comes from its place among the registered models' names, sorted;
its versions share it, and requests that named no registered model are grey.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import plotly.express as px
import plotly.graph_objects as go

UNKNOWN = "unknown"
UNKNOWN_COLOUR = "#9e9e9e"
PALETTE = px.colors.qualitative.Plotly


def model_colours(names: Iterable[str]) -> dict[str, str]:
    """Each registered model's colour, by name."""
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(sorted(set(names)))}


def colour_of(label: str, colours: Mapping[str, str]) -> str | None:
    """The colour of ``name`` or ``name@version``; None for a trace that is no model."""
    if label == UNKNOWN:
        return UNKNOWN_COLOUR
    return colours.get(label.split("@", 1)[0])


def paint(figure: go.Figure, colours: Mapping[str, str]) -> go.Figure:
    """Give each trace named after a model that model's colour (others keep theirs)."""
    for trace in figure.data:
        colour = colour_of(str(trace.name), colours)
        if colour is None:
            continue
        if isinstance(trace, go.Scatter):
            trace.update(line_color=colour, marker_color=colour)
        else:
            trace.update(marker_color=colour)
    return figure
