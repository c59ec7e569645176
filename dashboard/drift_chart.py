"""The Drift page's chart: each feature's PSI against the warn and alert lines (no Streamlit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

LEVEL_COLOURS = {"stable": "#2e7d32", "warn": "#f9a825", "alert": "#c62828"}


def psi_bars(features: Sequence[Mapping[str, Any]], thresholds: Mapping[str, float]) -> go.Figure:
    """Horizontal bars, the most drifted feature on top, coloured by level."""
    ordered = list(reversed(features))  # plotly draws the first bar at the bottom
    figure = go.Figure(
        go.Bar(
            x=[feature["psi"] for feature in ordered],
            y=[feature["feature"] for feature in ordered],
            orientation="h",
            marker_color=[LEVEL_COLOURS[feature["level"]] for feature in ordered],
            hovertemplate="%{y}: PSI %{x:.3f}<extra></extra>",
        )
    )
    for name, value in thresholds.items():
        figure.add_vline(x=value, line_dash="dash", annotation_text=f"{name} {value:g}")
    figure.update_layout(
        title={"text": "PSI per feature, recent window against the reference", "x": 0},
        height=max(300, 22 * len(ordered) + 120),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        xaxis_title="PSI",
    )
    return figure
