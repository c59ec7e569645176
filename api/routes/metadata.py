"""GET /metadata: the service's facts, or one model's card."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.engine import make_url

from api import SERVICE_NAME, __version__
from api.deps import RegistryDep, SettingsDep
from api.errors import NotFoundError
from api.schemas import error_responses
from registry.catalogue import ModelStatus
from registry.errors import RegistryError
from registry.registry import ModelRegistry

router = APIRouter(tags=["service"])

# The Space's log says the same, in the same capitals (deploy/start.sh).
_EPHEMERAL_WARNING = (
    "TRACES ARE EPHEMERAL: the prediction history is lost at every restart. Mount a "
    "storage bucket volume or set DATABASE_URL to keep it."
)


@router.get(
    "/metadata",
    summary="Service metadata, or a model's card with ?model=",
    responses=error_responses(404, descriptions={404: "Unknown model or version"}),
)
def metadata(
    request: Request, settings: SettingsDep, registry: RegistryDep, model: str | None = None
) -> dict[str, Any]:
    """Version, commit, environment, default and fallback models, registry stats, uptime."""
    if model is not None:
        return {**_model_card(registry, model), "replica": _replica(request)}
    entries = list(registry.entries())
    return {
        "service": SERVICE_NAME,
        "version": __version__,
        "commit": settings.git_commit,
        "env": settings.env,
        "default_model": registry.default,
        "fallback_models": registry.fallbacks,
        "database": make_url(settings.database_url).get_backend_name(),
        "trace_storage": settings.trace_storage,
        "trace_warning": _EPHEMERAL_WARNING if settings.trace_storage == "ephemeral" else None,
        "uptime_seconds": round(time.monotonic() - request.app.state.started_monotonic, 3),
        # A pod's name is its hostname: which replica answered, with the worker in it.
        "hostname": socket.gethostname(),
        "worker_pid": os.getpid(),
        "replica": _replica(request),
        "registry": {
            "models": len(registry.catalogue.names()),
            "versions": len(entries),
            "loaded": sum(entry.status is ModelStatus.LOADED for entry in entries),
            "failed": sum(entry.status is ModelStatus.FAILED for entry in entries),
            "max_loaded_models": registry.max_loaded,
            "scanned_at": registry.scanned_at.isoformat(),
            "problems": registry.problems,
        },
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_batch_rows": settings.max_batch_rows,
            "max_audio_seconds": settings.max_audio_seconds,
        },
    }


# Under `python -m api`; ray_serve.deployment sets app.state.ray_replica in each replica.
_NOT_UNDER_RAY = {"ray_replica_id": None, "ray_node_id": None}


def _replica(request: Request) -> dict[str, Any]:
    """Which process answered, and under Ray Serve (ray_serve/) which replica on which node."""
    return {"pid": os.getpid(), **getattr(request.app.state, "ray_replica", _NOT_UNDER_RAY)}


def _model_card(registry: ModelRegistry, ref: str) -> dict[str, Any]:
    try:
        entry = registry.resolve(ref)
    except RegistryError as error:
        raise NotFoundError(str(error)) from error
    manifest = entry.manifest
    return {
        "name": manifest.name,
        "version": manifest.version,
        "status": entry.status,
        "task": manifest.task,
        "framework": manifest.framework,
        "description": manifest.description,
        "intended_input": manifest.input.model_dump(mode="json"),
        "labels": manifest.output.labels,
        "decision_threshold": manifest.output.decision_threshold,
        "metrics": manifest.metrics,
        "evaluations": [evaluation.model_dump(mode="json") for evaluation in manifest.evaluations],
        "training": manifest.training.model_dump(mode="json"),
        "artifact": {"file": manifest.artifact, "sha256": manifest.sha256},
        "created_at": manifest.created_at.isoformat(),
    }
