"""Prometheus metrics of the predict path and the registry: predictions, latency, loads.

Several worker processes: ``python -m api`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
prometheus_client is imported, each worker writes its samples there, and ``/metrics``
adds them up.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from db.tables import Outcome
from ml.manifest import ModelManifest

NAMESPACE = "mldeploy"
# Sub-millisecond buckets: a tabular prediction is answered in about a millisecond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
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
    buckets=LATENCY_BUCKETS,
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
TRACE_WRITE_FAILURES = Counter(
    "trace_write_failures",
    "Trace rows that could not be committed (their requests were answered 503).",
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


class PredictionMeter:
    """Counts each request's outcome and times the answered ones.

    The labelled children are kept per model version: looking them up again costs more than
    the increment itself, on every request.
    """

    def __init__(self) -> None:
        self._outcomes: dict[tuple[str, str, Outcome], Counter] = {}
        self._answered: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def refused(self, name: str, version: str, outcome: Outcome) -> None:
        self._outcome(name, version, outcome).inc()

    def answered(self, name: str, version: str, rows: int, seconds: float) -> None:
        self._outcome(name, version, Outcome.OK).inc()
        children = self._answered.get((name, version))
        if children is None:
            children = self._answered[(name, version)] = (
                PREDICTED_ROWS.labels(name, version),
                PREDICTION_LATENCY.labels(name, version),
            )
        rows_counter, latency = children
        rows_counter.inc(rows)
        latency.observe(seconds)

    def _outcome(self, name: str, version: str, outcome: Outcome) -> Counter:
        key = (name, version, outcome)
        child = self._outcomes.get(key)
        if child is None:
            child = self._outcomes[key] = PREDICTIONS.labels(name, version, outcome)
        return child
