"""Prometheus metrics: predictions, latency, model loads, fallbacks, HTTP requests.

Several worker processes: ``python -m api`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
prometheus_client is imported, each worker writes its samples there, and ``/metrics``
adds them up.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics

from ml.manifest import ModelManifest

NAMESPACE = "mldeploy"
# Sub-millisecond buckets: a tabular prediction is answered in about a millisecond.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

PREDICTIONS = Counter(
    "predictions",
    "Prediction requests by served model, version and outcome.",
    ["model", "version", "outcome"],
    namespace=NAMESPACE,
)
PREDICTED_ROWS = Counter(
    "predicted_rows",
    "Instances predicted (a batch counts each row).",
    ["model", "version"],
    namespace=NAMESPACE,
)
PREDICTION_LATENCY = Histogram(
    "prediction_duration_seconds",
    "Time to answer a prediction request, trace commit included.",
    ["model", "version"],
    namespace=NAMESPACE,
    buckets=_LATENCY_BUCKETS,
)
MODEL_LOAD_SECONDS = Histogram(
    "model_load_duration_seconds",
    "Time to verify, load and warm up a model.",
    ["model", "version"],
    namespace=NAMESPACE,
    buckets=_LOAD_BUCKETS,
)
MODEL_LOAD_FAILURES = Counter(
    "model_load_failures",
    "Model loads that failed (bad artifact, hash mismatch, runtime error).",
    ["model", "version"],
    namespace=NAMESPACE,
)
MODELS_LOADED = Gauge(
    "model_loaded",
    "1 while the model version is loaded in at least one worker.",
    ["model", "version"],
    namespace=NAMESPACE,
    multiprocess_mode="livemax",
)
FALLBACKS = Counter(
    "fallbacks",
    "Requests served by a fallback model in place of the one asked for.",
    ["requested_model", "model", "version"],
    namespace=NAMESPACE,
)


class PrometheusListener:
    """Records the registry's lifecycle events as metrics."""

    def model_loaded(self, manifest: ModelManifest, seconds: float) -> None:
        MODEL_LOAD_SECONDS.labels(manifest.name, manifest.version).observe(seconds)
        MODELS_LOADED.labels(manifest.name, manifest.version).set(1)

    def model_unloaded(self, manifest: ModelManifest) -> None:
        MODELS_LOADED.labels(manifest.name, manifest.version).set(0)

    def model_failed(self, manifest: ModelManifest, error: str) -> None:
        MODEL_LOAD_FAILURES.labels(manifest.name, manifest.version).inc()

    def fallback_used(self, requested: ModelManifest, served: ModelManifest, reason: str) -> None:
        FALLBACKS.labels(requested.name, served.name, served.version).inc()


def instrument_http(app: FastAPI) -> None:
    """Count HTTP requests by route template, method and status, and time them."""
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=["/metrics"],
    )
    instrumentator.add(http_metrics.requests(metric_namespace=NAMESPACE))
    instrumentator.add(
        http_metrics.latency(metric_namespace=NAMESPACE, buckets=_LATENCY_BUCKETS)
    )
    instrumentator.instrument(app)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text: this process's metrics, or every worker's when multiprocess."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_exited() -> None:
    """Drop this worker's live gauges from the aggregate (multiprocess mode)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(os.getpid())
