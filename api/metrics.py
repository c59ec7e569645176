"""Prometheus metrics: predictions, latency, model loads, fallbacks, HTTP requests.

Several worker processes: ``python -m api`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
prometheus_client is imported, each worker writes its samples there, and ``/metrics``
adds them up.
"""

from __future__ import annotations

import os

import time

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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests by method, route template and status.",
    ["method", "handler", "status"],
    namespace=NAMESPACE,
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to response start, by method and route template.",
    ["method", "handler"],
    namespace=NAMESPACE,
    buckets=_LATENCY_BUCKETS,
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


class HttpMetricsMiddleware:
    """Counts and times HTTP requests by the matched route's template (bounded labels).

    NOTE: hand-written rather than prometheus-fastapi-instrumentator, which matches every
    route again and builds Request and Response objects per request: measured at a fifth of
    this service's tabular throughput. The router already records the route in the scope.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                handler = _route_template(scope)
                if handler != "/metrics":
                    method = scope["method"]
                    HTTP_LATENCY.labels(method, handler).observe(time.perf_counter() - started)
                    HTTP_REQUESTS.labels(method, handler, str(status)).inc()
            await send(message)

        await self.app(scope, receive, send_and_observe)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    # Unmatched paths share one label, so scanning for URLs cannot grow the series.
    return getattr(route, "path", None) or "unmatched"


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
