"""Service-level routes: what this is, liveness, readiness, metrics."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api import SERVICE_NAME, __version__
from api.deps import DataPlaneDep, RegistryDep, SettingsDep
from api.errors import ServiceUnavailableError, UnauthorizedError
from api.metrics import render_metrics
from api.schemas import error_responses

router = APIRouter(tags=["service"])


@router.get("/", summary="Service name, version, default model and links")
def service_root(request: Request, settings: SettingsDep, registry: RegistryDep) -> dict[str, Any]:
    """What this service is and where to go next."""
    base = str(request.base_url).rstrip("/")
    return {
        "service": SERVICE_NAME,
        "version": __version__,
        "default_model": registry.default,
        "models": registry.catalogue.names(),
        "links": {
            "docs": f"{base}/docs",
            "openapi": f"{base}/openapi.json",
            "models": f"{base}/models",
            "metrics": f"{base}/metrics",
            "metadata": f"{base}/metadata",
            "dashboard": settings.dashboard_url,
        },
    }


@router.get("/health", summary="Liveness")
def health() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: database reachable, registry scanned, default model readable",
    responses=error_responses(503, descriptions={503: "Not ready: the answer says why"}),
)
async def ready(data_plane: DataPlaneDep, registry: RegistryDep) -> dict[str, Any]:
    """503, naming why, until the trace database answers (within 1.5 s) and DEFAULT_MODEL
    names a readable model: an orchestrator must not send traffic before."""
    problem = await data_plane.not_ready_reason()
    if problem is not None:
        raise ServiceUnavailableError(f"not ready: {problem}")
    return {
        "status": "ready",
        "database": "ok",
        "registered_models": len(registry.catalogue.names()),
        "loaded_models": [entry.ref for entry in registry.loader.loaded_entries()],
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, descriptions={401: "METRICS_TOKEN is set: no or wrong token"}),
    },
)
def prometheus_metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus text format; with METRICS_TOKEN set, a bearer token is required."""
    if settings.metrics_token is not None:
        expected = settings.metrics_token.get_secret_value().encode()
        if not hmac.compare_digest(_bearer_token(request), expected):  # constant time
            raise UnauthorizedError("metrics require 'Authorization: Bearer <METRICS_TOKEN>'")
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)


def _bearer_token(request: Request) -> bytes:
    """The token of an ``Authorization: Bearer <token>`` header, the scheme in any case
    (RFC 7235); empty when there is none."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return token.strip().encode()
