"""Open Inference Protocol V2: server and model metadata, health, the repository extension.

Inference itself (``POST /v2/models/{m}[/versions/{v}]/infer``) is a fast route
(``api.v2_infer``). Errors under ``/v2`` are ``{"error": ...}`` with 400, 404 or 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse

from api import SERVICE_NAME, __version__
from api.deps import DataPlaneDep, EngineDep, RegistryDep, RegistrySyncDep
from api.errors import V2_PREFIX, NotFoundError
from api.registry_sync import load_or_unload_everywhere
from api.schemas import V2Error, V2ModelReady, V2ServerReady, error_responses
from api.security import AdminUser
from api.v2_infer import LABEL_OUTPUT, PROBABILITIES_OUTPUT
from db.tables import ChangeAction
from registry.catalogue import ModelEntry, ModelStatus
from registry.errors import RegistryError
from registry.registry import ModelRegistry
from serving.codecs import codec_for

router = APIRouter(prefix=V2_PREFIX, tags=["open inference protocol"])

_EXTENSIONS = ["binary_tensor_data", "model_repository"]
_UNKNOWN = error_responses(404, descriptions={404: "Unknown model or version"}, model=V2Error)
_ADMIN_ERRORS = error_responses(
    401,
    403,
    404,
    503,
    descriptions={404: "Unknown model", 503: "The model failed to load, or no database"},
    model=V2Error,
)
_READY_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": V2ModelReady},
    503: {"model": V2ModelReady, "description": "The model failed to load"},
    **_UNKNOWN,
}


@router.get("", summary="Server metadata")
def server_metadata() -> dict[str, Any]:
    """Name, version and the protocol extensions this server supports."""
    return {"name": SERVICE_NAME, "version": __version__, "extensions": _EXTENSIONS}


@router.get("/health/live", summary="Server liveness")
def server_live() -> dict[str, bool]:
    return {"live": True}


@router.get(
    "/health/ready",
    summary="Server readiness",
    response_model=None,
    responses={
        200: {"model": V2ServerReady},
        503: {"model": V2ServerReady, "description": "The trace database does not answer"},
    },
)
async def server_ready(data_plane: DataPlaneDep) -> dict[str, bool] | JSONResponse:
    """200 once the trace database answers and the default model can be read, else 503."""
    if await data_plane.not_ready_reason() is not None:
        return JSONResponse({"ready": False}, status_code=503)
    return {"ready": True}


@router.get("/models/{model_name}", summary="Model metadata (latest version)", responses=_UNKNOWN)
def model_metadata(model_name: str, registry: RegistryDep) -> dict[str, Any]:
    return _metadata(registry, _entry(registry, model_name, None))


@router.get(
    "/models/{model_name}/versions/{model_version}", summary="Model metadata", responses=_UNKNOWN
)
def model_version_metadata(
    model_name: str, model_version: str, registry: RegistryDep
) -> dict[str, Any]:
    return _metadata(registry, _entry(registry, model_name, model_version))


@router.get(
    "/models/{model_name}/ready",
    summary="Model readiness (latest version)",
    response_model=None,
    responses=_READY_RESPONSES,
)
def model_ready(model_name: str, registry: RegistryDep) -> dict[str, Any] | JSONResponse:
    return _readiness(_entry(registry, model_name, None))


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    summary="Model readiness",
    response_model=None,
    responses=_READY_RESPONSES,
)
def model_version_ready(
    model_name: str, model_version: str, registry: RegistryDep
) -> dict[str, Any] | JSONResponse:
    return _readiness(_entry(registry, model_name, model_version))


@router.post("/repository/index", summary="Every model version and its state")
def repository_index(registry: RegistryDep) -> list[dict[str, str]]:
    """READY when loaded; UNAVAILABLE when not loaded (it loads on first use) or failed."""
    return [_index_row(entry) for entry in registry.entries()]


@router.post(
    "/repository/models/{model_name}/load", summary="Load a model (admin)", responses=_ADMIN_ERRORS
)
async def repository_load(
    model_name: str,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
) -> dict[str, Any]:
    """Load the model on every worker."""
    entry = _entry(registry, model_name, None)
    await load_or_unload_everywhere(
        engine,
        sync,
        ChangeAction.LOAD,
        actor=admin.username,
        model=entry.manifest.name,
        version=entry.manifest.version,
    )
    return {}


@router.post(
    "/repository/models/{model_name}/unload",
    summary="Unload a model (admin)",
    responses=_ADMIN_ERRORS,
)
async def repository_unload(
    model_name: str,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
) -> dict[str, Any]:
    """Unload every version of the model on every worker."""
    name = _entry(registry, model_name, None).manifest.name
    await load_or_unload_everywhere(
        engine, sync, ChangeAction.UNLOAD, actor=admin.username, model=name
    )
    return {}


def _entry(registry: ModelRegistry, name: str, version: str | None) -> ModelEntry:
    try:
        return registry.resolve(f"{name}@{version}" if version else name)
    except RegistryError as error:
        raise NotFoundError(str(error)) from error


def _metadata(registry: ModelRegistry, entry: ModelEntry) -> dict[str, Any]:
    manifest = entry.manifest
    specs = codec_for(manifest.input).tensor_specs(manifest.input)
    return {
        "name": manifest.name,
        "versions": [e.manifest.version for e in registry.catalogue.versions(manifest.name)],
        "platform": manifest.framework,
        "inputs": [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs],
        "outputs": [
            {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
            {
                "name": PROBABILITIES_OUTPUT,
                "datatype": "FP64",
                "shape": [-1, len(manifest.output.labels)],
            },
        ],
        "parameters": {"labels": manifest.output.labels, "task": manifest.task},
    }


def _readiness(entry: ModelEntry) -> dict[str, Any] | JSONResponse:
    # A registered model loads on its first request; only a failed load makes it unready.
    body = {"name": entry.manifest.name, "ready": entry.status is not ModelStatus.FAILED}
    return body if body["ready"] else JSONResponse(body, status_code=503)


def _index_row(entry: ModelEntry) -> dict[str, str]:
    row = {"name": entry.manifest.name, "version": entry.manifest.version}
    if entry.status is ModelStatus.LOADED:
        return {**row, "state": "READY"}
    reason = entry.error if entry.status is ModelStatus.FAILED else "not loaded"
    return {**row, "state": "UNAVAILABLE", "reason": reason or "failed to load"}
