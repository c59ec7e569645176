"""Plotly figures of the pages, built from plain frames (no Streamlit here)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

logger = logging.getLogger(__name__)

_HEIGHT = 360
_TOOLBAR_PX = 40  # plotly's modebar: its buttons and their padding take about 35 px
_WAVEFORM_POINTS = 4000  # enough for the eye; a 30 s clip has a million samples


def _tidy(figure: go.Figure, title: str, height: int = _HEIGHT) -> go.Figure:
    # The title sits below the band plotly's toolbar (modebar) takes at the top right, which
    # would otherwise cover the end of a long title on a half-width chart.
    figure.update_layout(
        title={
            "text": title,
            "x": 0,
            "xref": "paper",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": _TOOLBAR_PX},
        },
        height=height,
        margin={"l": 10, "r": 10, "t": _TOOLBAR_PX + 50, "b": 10},
        legend_title_text="",
    )
    return figure


# --- Compare ---------------------------------------------------------------------------


def quality_bars(table: pd.DataFrame, metrics: Sequence[str], measured_on: str) -> go.Figure:
    """Each quality metric, one bar per model, on the data set ``measured_on`` names."""
    models = [column for column in table.columns if column != "best"]
    shown = table.loc[[m for m in metrics if m in table.index], models]
    frame = shown.reset_index(names="metric").melt(id_vars="metric", var_name="model")
    figure = px.bar(
        frame,
        x="metric",
        y="value",
        color="model",
        barmode="group",
        text_auto=".3f",
        range_y=[0, 1.05],
    )
    return _tidy(figure, f"Quality on {measured_on} (higher is better)")


def roc_chart(points: pd.DataFrame) -> go.Figure:
    # Straight segments: tied scores move the curve diagonally, as the AUC integrates it.
    figure = px.line(points, x="false positive rate", y="true positive rate", color="model")
    figure.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
    figure.update_xaxes(range=[0, 1], constrain="domain")
    figure.update_yaxes(range=[0, 1.01], scaleanchor="x", scaleratio=1)
    figure = _tidy(figure, "ROC curves (dotted: chance)", height=480)
    # Below the plot: beside it, the model names took the width the square plot needs.
    return figure.update_layout(legend={"orientation": "h", "x": 0, "y": -0.15, "yanchor": "top"})


def confusion_chart(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str
) -> go.Figure:
    figure = px.imshow(
        np.asarray(matrix),
        x=list(labels),
        y=list(labels),
        text_auto=True,
        color_continuous_scale="Blues",
        labels={"x": "predicted", "y": "true", "color": "samples"},
    )
    figure.update_coloraxes(showscale=False)
    return _tidy(figure, title, height=max(320, 120 + 40 * len(labels)))


def per_class_chart(frame: pd.DataFrame) -> go.Figure:
    figure = px.bar(
        frame,
        x="label",
        y="value",
        color="model",
        barmode="group",
        facet_col="metric",
        range_y=[0, 1.05],
    )
    figure.for_each_annotation(lambda note: note.update(text=note.text.split("=")[-1]))
    return _tidy(figure, "Precision and recall per class")


def latency_chart(frame: pd.DataFrame) -> go.Figure:
    # Log scale: a compiled linear model and a boosted ensemble are orders of magnitude apart.
    figure = px.bar(
        frame,
        x="model",
        y="ms",
        color="statistic",
        barmode="group",
        log_y=True,
        text_auto=".3g",
        labels={"ms": "milliseconds per sample (log scale)"},
    )
    return _tidy(figure, "Model latency per sample (lower is better)")


def agreement_chart(matrix: pd.DataFrame) -> go.Figure:
    figure = px.imshow(matrix, text_auto=".1%", zmin=0, zmax=1, color_continuous_scale="Greens")
    figure.update_coloraxes(showscale=False)
    return _tidy(figure, "Agreement: same label on the same sample", height=320)


def breakdown_chart(frame: pd.DataFrame, title: str) -> go.Figure:
    figure = px.bar(frame, x="samples", y="case", orientation="h", text_auto=True)
    figure.update_yaxes(title_text="")
    return _tidy(figure, title, height=260)


# --- Overview --------------------------------------------------------------------------


def traffic_counts_chart(buckets: pd.DataFrame, window: str) -> go.Figure:
    """Requests, errors and fallbacks per bucket of ``GET /traffic``."""
    frame = buckets.melt(
        id_vars="start", value_vars=["requests", "errors", "fallbacks"], var_name="series"
    )
    figure = px.line(frame, x="start", y="value", color="series", labels={"value": "requests"})
    figure.update_xaxes(title_text="")
    return _tidy(figure, f"Requests, errors and fallbacks over the last {window}")


def traffic_latency_chart(buckets: pd.DataFrame, window: str) -> go.Figure:
    frame = buckets.melt(
        id_vars="start", value_vars=["latency_ms_avg", "latency_ms_max"], var_name="latency"
    )
    frame["latency"] = frame["latency"].str.removeprefix("latency_ms_")
    figure = px.line(
        frame, x="start", y="value", color="latency", markers=True, labels={"value": "ms"}
    )
    figure.update_xaxes(title_text="")
    return _tidy(figure, f"Prediction latency over the last {window}")


def outcomes_chart(frame: pd.DataFrame) -> go.Figure:
    figure = px.bar(frame, x="model", y="requests", color="outcome", text_auto=True)
    return _tidy(figure, "Prediction requests since the API started, by outcome")


# --- Models ----------------------------------------------------------------------------


def headline_metrics_chart(frame: pd.DataFrame) -> go.Figure:
    """Manifest metrics (``model``, ``metric``, ``value``) of one task's models."""
    figure = px.bar(frame, x="metric", y="value", color="model", barmode="group", text_auto=".3f")
    return _tidy(figure, "Held-out metrics recorded at training")


# --- Predictions -----------------------------------------------------------------------


def volume_chart(frame: pd.DataFrame) -> go.Figure:
    figure = px.histogram(
        frame, x="received_at", color="model", nbins=40, labels={"received_at": "received"}
    )
    figure.update_yaxes(title_text="requests")
    return _tidy(figure, "Requests over time, by served model")


def outcome_timeline_chart(frame: pd.DataFrame) -> go.Figure:
    marked = frame.assign(kind=np.where(frame["fallback"], "fallback", frame["outcome"]))
    figure = px.histogram(
        marked, x="received_at", color="kind", nbins=40, labels={"received_at": "received"}
    )
    figure.update_yaxes(title_text="requests")
    return _tidy(figure, "Outcomes over time (fallbacks apart)")


def label_chart(frame: pd.DataFrame) -> go.Figure:
    counts = frame.dropna(subset=["label"]).groupby(["model", "label"]).size()
    figure = px.bar(
        counts.reset_index(name="requests"),
        x="label",
        y="requests",
        color="model",
        barmode="group",
        text_auto=True,
    )
    return _tidy(figure, "Predicted labels")


def latency_histogram(frame: pd.DataFrame) -> go.Figure:
    figure = px.histogram(
        frame.dropna(subset=["latency_ms"]),
        x="latency_ms",
        color="model",
        nbins=40,
        barmode="overlay",
        opacity=0.7,
        labels={"latency_ms": "latency (ms)"},
    )
    return _tidy(figure, "Latency distribution")


# --- Try a model -----------------------------------------------------------------------


def probability_chart(probabilities: Mapping[str, float], label: str) -> go.Figure:
    frame = pd.DataFrame(
        {"label": list(probabilities), "probability": list(probabilities.values())}
    )
    frame["answer"] = np.where(frame["label"] == label, "predicted", "other")
    figure = px.bar(
        frame.sort_values("probability"),
        x="probability",
        y="label",
        color="answer",
        orientation="h",
        text_auto=".1%",
        range_x=[0, 1],
        color_discrete_map={"predicted": "#2e7d32", "other": "#90a4ae"},
    )
    figure.update_layout(showlegend=False)
    return _tidy(figure, "Probability of each label", height=120 + 40 * len(frame))


def waveform_chart(samples: np.ndarray, sample_rate: int) -> go.Figure:
    step = max(1, len(samples) // _WAVEFORM_POINTS)
    shown = samples[::step]
    seconds = np.arange(len(shown)) * step / sample_rate
    figure = px.line(x=seconds, y=shown, labels={"x": "seconds", "y": "amplitude"})
    return _tidy(figure, "Waveform", height=240)
