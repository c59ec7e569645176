"""The registry over HTTP: list and inspect models; load, unload and rescan (admins).

Load, unload and reload reach every worker: recorded in the database, carried out by each
worker (``api.registry_sync``); the answer says how the answering worker did.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import EngineDep, RegistryDep, RegistrySyncDep
from api.errors import NotFoundError, ServiceUnavailableError
from api.registry_sync import load_or_unload_everywhere, run_on_every_worker
from api.schemas import (
    MeasuredOn,
    ModelActionResponse,
    ModelDetail,
    ModelsResponse,
    ModelSummary,
    ModelVersionInfo,
    UnreadableVersion,
    error_responses,
)
from api.security import AdminUser
from db.tables import ChangeAction
from ml.manifest import ModelManifest
from registry.catalogue import ModelEntry, ModelStatus
from registry.errors import ModelNotFoundError, RegistryError
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
async def reload_models(
    registry: RegistryDep, sync: RegistrySyncDep, engine: EngineDep, admin: AdminUser
) -> ModelsResponse:
    """Unload every model and scan the model store again, on every worker (admin)."""
    outcome = await run_on_every_worker(engine, sync, ChangeAction.RELOAD, actor=admin.username)
    if outcome.error is not None:
        raise ServiceUnavailableError(outcome.error)
    return list_models(registry)


@router.post("/{name}/load", response_model=ModelActionResponse, responses=_ADMIN_ERRORS)
async def load_model(
    name: str,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
    version: str | None = None,
) -> ModelActionResponse:
    """Load a model now on every worker, retrying one that failed before (admin)."""
    entry = _entry(registry, name, version)
    message = await load_or_unload_everywhere(
        engine,
        sync,
        ChangeAction.LOAD,
        actor=admin.username,
        model=entry.manifest.name,
        version=entry.manifest.version,
    )
    return ModelActionResponse(model=entry.ref, status=entry.status, message=message)


@router.post("/{name}/unload", response_model=ModelActionResponse, responses=_ADMIN_ERRORS)
async def unload_model(
    name: str,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
    version: str | None = None,
) -> ModelActionResponse:
    """Unload a model on every worker; the next request that needs it loads it (admin)."""
    entry = _entry(registry, name, version)
    message = await load_or_unload_everywhere(
        engine,
        sync,
        ChangeAction.UNLOAD,
        actor=admin.username,
        model=entry.manifest.name,
        version=entry.manifest.version,
    )
    return ModelActionResponse(model=entry.ref, status=entry.status, message=message)


def _entry(registry: ModelRegistry, name: str, version: str | None) -> ModelEntry:
    try:
        return registry.resolve(f"{name}@{version}" if version else name)
    except (ModelNotFoundError, RegistryError) as error:
        raise NotFoundError(str(error)) from error


def _summary(registry: ModelRegistry, name: str) -> ModelSummary:
    """The model as its bare name serves it: the champion when set (else the latest)."""
    versions = registry.catalogue.versions(name)
    serving = registry.serving_version(name)
    # A champion whose manifest cannot be read: the latest readable one describes the model.
    shown = next((e for e in versions if e.manifest.version == serving), versions[-1])
    manifest = shown.manifest
    return ModelSummary(
        name=name,
        latest_version=versions[-1].manifest.version,
        serving_version=serving,
        aliases=registry.aliases_of(name),
        status=shown.status if shown.manifest.version == serving else ModelStatus.FAILED,
        is_default=registry.is_default(name),
        task=manifest.task,
        input_kind=manifest.input.kind,
        labels=manifest.output.labels,
        description=manifest.description,
        metrics=manifest.metrics,
        metrics_measured_on=_measured_on(manifest),
        versions=_versions_info(registry, name, versions),
    )


def _measured_on(manifest: ModelManifest) -> MeasuredOn | None:
    measured = manifest.headline_evaluation()
    if measured is None:
        return None
    return MeasuredOn(
        dataset=measured.dataset, samples=measured.samples, description=measured.description
    )


def _versions_info(
    registry: ModelRegistry, name: str, entries: list[ModelEntry]
) -> list[ModelVersionInfo]:
    """Every version in order, those whose manifest cannot be read shown as failed."""
    infos = [_version_info(entry) for entry in entries]
    infos += [_unreadable_info(item) for item in registry.unreadable if item.name == name]
    for info in infos:
        info.aliases = [a for a, v in registry.aliases_of(name).items() if v == info.version]
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
