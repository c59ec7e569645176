"""The registry over HTTP: list and inspect models; load, unload and rescan (admins)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import RegistryDep
from api.errors import NotFoundError, ServiceUnavailableError
from api.schemas import (
    ModelActionResponse,
    ModelDetail,
    ModelsResponse,
    ModelSummary,
    ModelVersionInfo,
    UnreadableVersion,
    error_responses,
)
from api.security import AdminUser
from registry.catalogue import ModelEntry, ModelStatus
from registry.errors import ModelLoadError, ModelNotFoundError, RegistryError
from registry.refs import version_sort_key
from registry.registry import ModelRegistry
from registry.store import UnreadableManifest

router = APIRouter(prefix="/models", tags=["models"])

_UNKNOWN = {404: "Unknown model or version"}
_ADMIN_ERRORS = error_responses(
    401, 403, 404, 503, descriptions={**_UNKNOWN, 503: "The model failed to load, or no database"}
)


@router.get("", response_model=ModelsResponse, summary="Registered models and their status")
def list_models(registry: RegistryDep) -> ModelsResponse:
    """Every model with its versions, status (registered, loaded, failed) and key metrics."""
    return ModelsResponse(
        default_model=registry.default,
        fallback_models=registry.fallbacks,
        models=[_summary(registry, name) for name in registry.catalogue.names()],
        unreadable=[
            UnreadableVersion(
                model=item.name, version=item.version, path=str(item.path), error=item.error
            )
            for item in registry.unreadable
        ],
        problems=registry.problems,
    )


@router.get(
    "/{name}",
    response_model=ModelDetail,
    responses=error_responses(404, descriptions=_UNKNOWN),
    summary="One model, with its latest (or ?version=) manifest",
)
def get_model(name: str, registry: RegistryDep, version: str | None = None) -> ModelDetail:
    """The model's status and versions, and the full manifest of one version."""
    entry = _entry(registry, name, version)
    summary = _summary(registry, name)
    return ModelDetail(**summary.model_dump(), manifest=entry.manifest.model_dump(mode="json"))


@router.post(
    "/reload",
    response_model=ModelsResponse,
    responses=error_responses(
        401, 403, 503, descriptions={503: "The model store cannot be scanned, or no database"}
    ),
)
async def reload_models(registry: RegistryDep, _admin: AdminUser) -> ModelsResponse:
    """Unload every model and scan the model store again (admin)."""
    try:
        await run_in_threadpool(registry.rescan)
    except RegistryError as error:
        raise ServiceUnavailableError(str(error)) from error
    return list_models(registry)


@router.post("/{name}/load", response_model=ModelActionResponse, responses=_ADMIN_ERRORS)
async def load_model(
    name: str, registry: RegistryDep, _admin: AdminUser, version: str | None = None
) -> ModelActionResponse:
    """Load a model now, retrying one that failed before (admin)."""
    entry = _entry(registry, name, version)
    try:
        await run_in_threadpool(registry.loader.load, entry, retry_failed=True)
    except ModelLoadError as error:
        raise ServiceUnavailableError(f"{entry.ref} failed to load: {error}") from error
    return ModelActionResponse(model=entry.ref, status=entry.status, message="loaded")


@router.post("/{name}/unload", response_model=ModelActionResponse, responses=_ADMIN_ERRORS)
async def unload_model(
    name: str, registry: RegistryDep, _admin: AdminUser, version: str | None = None
) -> ModelActionResponse:
    """Unload a model; the next request that needs it loads it again (admin)."""
    entry = _entry(registry, name, version)
    was_loaded = await run_in_threadpool(registry.loader.unload, entry)
    message = "unloaded" if was_loaded else "was not loaded"
    return ModelActionResponse(model=entry.ref, status=entry.status, message=message)


def _entry(registry: ModelRegistry, name: str, version: str | None) -> ModelEntry:
    try:
        return registry.resolve(f"{name}@{version}" if version else name)
    except (ModelNotFoundError, RegistryError) as error:
        raise NotFoundError(str(error)) from error


def _summary(registry: ModelRegistry, name: str) -> ModelSummary:
    versions = registry.catalogue.versions(name)
    latest = versions[-1].manifest
    return ModelSummary(
        name=name,
        latest_version=latest.version,
        status=versions[-1].status,
        is_default=registry.is_default(name),
        task=latest.task,
        input_kind=latest.input.kind,
        labels=latest.output.labels,
        description=latest.description,
        metrics=latest.metrics,
        versions=_versions_info(registry, name, versions),
    )


def _versions_info(
    registry: ModelRegistry, name: str, entries: list[ModelEntry]
) -> list[ModelVersionInfo]:
    """Every version in order, those whose manifest cannot be read shown as failed."""
    infos = [_version_info(entry) for entry in entries]
    infos += [_unreadable_info(item) for item in registry.unreadable if item.name == name]
    return sorted(infos, key=lambda info: version_sort_key(info.version))


def _unreadable_info(item: UnreadableManifest) -> ModelVersionInfo:
    return ModelVersionInfo(
        version=item.version,
        status=ModelStatus.FAILED,
        error=f"manifest cannot be read: {item.error}",
        task=None,
        framework=None,
        created_at=None,
        loaded_at=None,
        load_seconds=None,
        metrics={},
    )


def _version_info(entry: ModelEntry) -> ModelVersionInfo:
    manifest = entry.manifest
    return ModelVersionInfo(
        version=manifest.version,
        status=entry.status,
        error=entry.error,
        task=manifest.task,
        framework=manifest.framework,
        created_at=manifest.created_at,
        loaded_at=entry.loaded_at,
        load_seconds=entry.load_seconds,
        metrics=manifest.metrics,
    )
