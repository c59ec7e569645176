"""The Overview's traffic: ``GET /traffic``'s buckets as a frame, and their totals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

COLUMNS = ["start", "requests", "errors", "fallbacks", "latency_ms_avg", "latency_ms_max"]


@dataclass(frozen=True)
class TrafficTotals:
    requests: int
    errors: int
    fallbacks: int
    latency_ms_mean: float | None
    """Weighted by each bucket's requests."""
    latency_ms_max: float | None


def traffic_frame(body: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(body["buckets"], columns=COLUMNS)
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    return frame


def totals(frame: pd.DataFrame) -> TrafficTotals:
    timed = frame.dropna(subset=["latency_ms_avg"])
    weight = timed["requests"].sum()
    return TrafficTotals(
        requests=int(frame["requests"].sum()),
        errors=int(frame["errors"].sum()),
        fallbacks=int(frame["fallbacks"].sum()),
        latency_ms_mean=(
            float((timed["latency_ms_avg"] * timed["requests"]).sum() / weight) if weight else None
        ),
        latency_ms_max=None if timed.empty else float(timed["latency_ms_max"].max()),
    )
