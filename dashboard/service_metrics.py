"""Service metrics from the API's Prometheus text: its counters since it started.

Traffic over time comes from the trace database (``GET /traffic``), not from here: a page
that sampled these counters would only know what happened while it was open.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

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


def predictions_frame(snapshot: MetricsSnapshot) -> pd.DataFrame:
    """Requests since the API started, by model, version and outcome."""
    rows = [
        {"model": f"{model}@{version}" if version else model, "outcome": outcome, "requests": count}
        for (model, version, outcome), count in snapshot.predictions.items()
        if count > 0
    ]
    return pd.DataFrame(rows, columns=["model", "outcome", "requests"])
