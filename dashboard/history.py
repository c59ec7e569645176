"""The prediction history of ``GET /predictions`` as a table the charts can use (pure pandas)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.colours import UNKNOWN

logger = logging.getLogger(__name__)

COLUMNS = [
    "received_at",
    "request_id",
    "model",
    "requested",
    "outcome",
    "label",
    "fallback",
    "latency_ms",
    "rows",
    "input_kind",
    "error",
]
OUTCOMES = ["ok", "invalid_input", "not_found", "unavailable", "error"]
REQUESTED_CHARS = 60


@dataclass(frozen=True)
class HistorySummary:
    requests: int
    failed: int
    fallbacks: int
    median_latency_ms: float | None


def history_frame(items: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per traced request, newest first, with the served model as ``name@version``."""
    rows = [
        {
            "received_at": item["received_at"],
            "request_id": item["request_id"],
            "model": _served(item),
            "requested": _shortened(item["model_requested"]),
            "outcome": item["outcome"],
            "label": item.get("label"),
            "fallback": bool(item["is_fallback"]),
            "latency_ms": item.get("latency_ms"),
            "rows": item.get("rows", 1),
            "input_kind": item.get("input_kind"),
            "error": item.get("error"),
        }
        for item in items
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601")
    frame["latency_ms"] = pd.to_numeric(frame["latency_ms"])
    return frame


def summarise(frame: pd.DataFrame) -> HistorySummary:
    latency = frame["latency_ms"].dropna()
    return HistorySummary(
        requests=len(frame),
        failed=int((frame["outcome"] != "ok").sum()),
        fallbacks=int(frame["fallback"].sum()),
        median_latency_ms=float(latency.median()) if len(latency) else None,
    )


def _served(item: Mapping[str, Any]) -> str:
    # A refused request never reached a model. What it asked for is anyone's text (`nope`,
    # `a@@b`, 5,000 characters): all of them are one "unknown" bucket in the charts.
    name, version = item.get("model_name"), item.get("model_version")
    if name is None:
        return UNKNOWN
    return f"{name}@{version}" if version else str(name)


def _shortened(text: str | None) -> str | None:
    """At most ``REQUESTED_CHARS`` characters of what a client sent, for the table."""
    if text is None or len(text) <= REQUESTED_CHARS:
        return text
    return text[: REQUESTED_CHARS - 1] + "…"
