"""Service metrics from the API's Prometheus text, and their history for the charts over time.

The API exposes counters and histograms since its start; rates and recent percentiles come from
the difference between two snapshots, which the Overview page keeps in the browser session.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

logger = logging.getLogger(__name__)

PREDICTIONS = "mldeploy_predictions_total"
FALLBACKS = "mldeploy_fallbacks_total"
LATENCY_BUCKET = "mldeploy_prediction_duration_seconds_bucket"
LATENCY_COUNT = "mldeploy_prediction_duration_seconds_count"
MODEL_LOADED = "mldeploy_model_loaded"
LOAD_FAILURES = "mldeploy_model_load_failures_total"
SUCCESS = "ok"

HISTORY_COLUMNS = ["time", "requests_per_s", "failed_per_s", "fallbacks_per_s", "p50_ms", "p95_ms"]


@dataclass(frozen=True)
class MetricsSnapshot:
    """The counters of one ``/metrics`` read, summed over the labels the dashboard needs."""

    taken_at: datetime
    predictions: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """(model, version, outcome) -> requests."""
    fallbacks: float = 0.0
    latency_buckets: dict[float, float] = field(default_factory=dict)
    """Upper bound in seconds -> requests at most that long (cumulative, every model)."""
    latency_count: float = 0.0
    loaded_models: list[str] = field(default_factory=list)
    load_failures: dict[str, float] = field(default_factory=dict)

    @property
    def total_predictions(self) -> float:
        return sum(self.predictions.values())

    @property
    def failed_predictions(self) -> float:
        return sum(
            count for (_, _, outcome), count in self.predictions.items() if outcome != SUCCESS
        )


def parse_metrics(text: str, taken_at: datetime) -> MetricsSnapshot:
    """The snapshot of a Prometheus text exposition (``ValueError`` if it is not one)."""
    predictions: dict[tuple[str, str, str], float] = {}
    buckets: dict[float, float] = {}
    fallbacks = latency_count = 0.0
    loaded: list[str] = []
    failures: dict[str, float] = {}
    for sample in _samples(text):
        labels = sample.labels
        if sample.name == PREDICTIONS:
            key = (labels["model"], labels["version"], labels["outcome"])
            predictions[key] = predictions.get(key, 0.0) + sample.value
        elif sample.name == FALLBACKS:
            fallbacks += sample.value
        elif sample.name == LATENCY_BUCKET:
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
        elif sample.name == LATENCY_COUNT:
            latency_count += sample.value
        elif sample.name == MODEL_LOADED and sample.value >= 1:
            loaded.append(f"{labels['model']}@{labels['version']}")
        elif sample.name == LOAD_FAILURES and sample.value > 0:
            failures[f"{labels['model']}@{labels['version']}"] = sample.value
    return MetricsSnapshot(
        taken_at,
        predictions,
        fallbacks,
        dict(sorted(buckets.items())),
        latency_count,
        sorted(loaded),
        failures,
    )


def _samples(text: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


def histogram_quantile(quantile: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's estimate: linear within the bucket holding the rank; None with no data."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def latency_percentiles_ms(buckets: Mapping[float, float]) -> tuple[float | None, float | None]:
    """p50 and p95 in milliseconds."""
    return _ms(histogram_quantile(0.5, buckets)), _ms(histogram_quantile(0.95, buckets))


def history_frame(history: Sequence[MetricsSnapshot]) -> pd.DataFrame:
    """One row per interval between consecutive snapshots: rates and its latency percentiles."""
    rows = []
    for before, after in pairwise(history):
        seconds = (after.taken_at - before.taken_at).total_seconds()
        if seconds <= 0:
            continue
        recent = {
            bound: _increase(before.latency_buckets.get(bound, 0.0), count)
            for bound, count in after.latency_buckets.items()
        }
        p50, p95 = latency_percentiles_ms(recent)
        rows.append(
            {
                "time": after.taken_at,
                "requests_per_s": _increase(before.total_predictions, after.total_predictions)
                / seconds,
                "failed_per_s": _increase(before.failed_predictions, after.failed_predictions)
                / seconds,
                "fallbacks_per_s": _increase(before.fallbacks, after.fallbacks) / seconds,
                "p50_ms": p50,
                "p95_ms": p95,
            }
        )
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def predictions_frame(snapshot: MetricsSnapshot) -> pd.DataFrame:
    """Requests since the API started, by model, version and outcome."""
    rows = [
        {"model": f"{model}@{version}" if version else model, "outcome": outcome, "requests": count}
        for (model, version, outcome), count in snapshot.predictions.items()
        if count > 0
    ]
    return pd.DataFrame(rows, columns=["model", "outcome", "requests"])


def _increase(before: float, after: float) -> float:
    # A counter that went down means the API restarted: everything since then is new.
    return after - before if after >= before else after


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
