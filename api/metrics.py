"""HTTP metrics (requests by route and status, their latency) and the /metrics exposition.

The prediction and registry metrics are the data plane's (``serving.metrics``).
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import LATENCY_BUCKETS, NAMESPACE

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
    buckets=LATENCY_BUCKETS,
)


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
                    if method not in _KNOWN_METHODS:  # the server passes WebDAV's and others
                        method = "other"
                    latency, requests = _http_children(method, handler, status)
                    latency.observe(time.perf_counter() - started)
                    requests.inc()
            await send(message)

        await self.app(scope, receive, send_and_observe)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HttpChildren = tuple[Histogram, Counter]
_http_children_cache: dict[tuple[str, str, int], _HttpChildren] = {}


def _http_children(method: str, handler: str, status: int) -> _HttpChildren:
    # Labelled children are looked up once per label set: the lookup costs more than the
    # increment, on every request.
    key = (method, handler, status)
    children = _http_children_cache.get(key)
    if children is None:
        children = _http_children_cache[key] = (
            HTTP_LATENCY.labels(method, handler),
            HTTP_REQUESTS.labels(method, handler, str(status)),
        )
    return children


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
