"""Promotion and rollback: aliases, the default and fallback models, and who changed what.

Every change is written to the database first, applied by the answering worker before it
answers, and by every other worker and replica at its next poll (``REGISTRY_POLL_SECONDS``).
Admins change; any logged-in user reads the history.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, RegistryDep, RegistrySyncDep
from api.errors import ConflictError, InvalidRequestError, NotFoundError
from api.schemas import (
    AliasChange,
    AliasUpdate,
    DefaultModelChange,
    DefaultModelUpdate,
    FallbackModelsChange,
    FallbackModelsUpdate,
    RegistryChangePage,
    RegistryChangeRecord,
    error_responses,
)
from api.security import AdminUser, CurrentUser
from db import serving_state
from db.tables import RegistryChange
from registry.aliases import CHAMPION, check_alias_name
from registry.errors import (
    InvalidAliasError,
    InvalidModelRefError,
    ModelUnavailableError,
    RegistryError,
)
from registry.registry import ModelRegistry

router = APIRouter(tags=["promotion"])

_CHANGE_ERRORS = error_responses(
    401, 403, 404, 422, 503, descriptions={404: "Unknown model, version or alias"}
)
HistoryLimit = Annotated[int, Query(ge=1, le=1000)]
HistoryOffset = Annotated[int, Query(ge=0, le=2**31 - 1)]


@router.put(
    "/models/{name}/aliases/{alias}",
    response_model=AliasChange,
    responses=_CHANGE_ERRORS,
    summary="Point an alias at a version (admin)",
)
async def set_alias(
    name: str,
    alias: str,
    body: AliasUpdate,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
) -> AliasChange:
    """``name@alias`` serves ``version`` on every worker; ``champion`` is what ``name`` serves."""
    versions = _versions(registry, name)
    _check_alias(alias, versions)
    if body.version not in versions:
        raise NotFoundError(
            f"model '{name}' has no version '{body.version}' (versions: {', '.join(versions)})"
        )
    change = await run_in_threadpool(
        serving_state.set_alias,
        engine,
        model=name,
        alias=alias,
        version=body.version,
        actor=admin.username,
    )
    await sync.refresh()
    return _alias_change(change)


@router.delete(
    "/models/{name}/aliases/{alias}",
    response_model=AliasChange,
    responses=_CHANGE_ERRORS,
    summary="Delete an alias (admin)",
)
async def delete_alias(
    name: str,
    alias: str,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
) -> AliasChange:
    """Without its ``champion``, ``name`` serves its latest version again."""
    _versions(registry, name)
    change = await run_in_threadpool(
        serving_state.delete_alias, engine, model=name, alias=alias, actor=admin.username
    )
    if change is None:
        raise NotFoundError(_unknown_alias(registry, name, alias))
    await sync.refresh()
    return _alias_change(change)


@router.post(
    "/models/{name}/rollback",
    response_model=AliasChange,
    responses={
        **_CHANGE_ERRORS,
        **error_responses(409, descriptions={409: "No earlier version to go back to"}),
    },
    summary="Roll the champion back (admin)",
)
async def roll_back(
    name: str,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
    alias: Annotated[str, Query(description="the alias to roll back")] = CHAMPION,
) -> AliasChange:
    """The alias names the version it named before its last change (each rollback undoes
    one more); 409 when there is none."""
    _versions(registry, name)
    try:
        change = await run_in_threadpool(
            serving_state.roll_back_alias, engine, model=name, alias=alias, actor=admin.username
        )
    except serving_state.NothingToRollBackError as error:
        raise ConflictError(str(error)) from error
    await sync.refresh()
    return _alias_change(change)


@router.get(
    "/models/{name}/history",
    response_model=RegistryChangePage,
    responses=error_responses(401, 404, 503, descriptions={404: "Unknown model"}),
    summary="Every change of a model: aliases, rollbacks, default, loads",
)
def model_history(
    name: str,
    registry: RegistryDep,
    engine: EngineDep,
    _user: CurrentUser,
    limit: HistoryLimit = 100,
    offset: HistoryOffset = 0,
) -> RegistryChangePage:
    """Newest first: who, when, what, from and to (any logged-in user)."""
    _versions(registry, name)
    return _page(engine, name, limit, offset)


@router.get(
    "/history",
    response_model=RegistryChangePage,
    responses=error_responses(401, 503),
    summary="Every change of every model, the default and the fallbacks",
)
def history(
    engine: EngineDep, _user: CurrentUser, limit: HistoryLimit = 100, offset: HistoryOffset = 0
) -> RegistryChangePage:
    """Newest first (any logged-in user)."""
    return _page(engine, None, limit, offset)


@router.put(
    "/default-model",
    response_model=DefaultModelChange,
    responses={**_CHANGE_ERRORS, **error_responses(409, descriptions={409: "It cannot serve"})},
    summary="Change the model POST /predict serves (admin)",
)
async def set_default_model(
    body: DefaultModelUpdate,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
) -> DefaultModelChange:
    """Any reference: ``name`` (then its champion moves it along), ``name@version``,
    ``name@alias``. It outlives restarts: DEFAULT_MODEL seeds a fresh database only."""
    ref = _served_ref(registry, body.model.strip(), "model")
    change = await run_in_threadpool(
        serving_state.set_default_model, engine, ref=ref, actor=admin.username
    )
    await sync.refresh()
    return DefaultModelChange(default_model=ref, previous=change.from_version)


@router.put(
    "/fallback-models",
    response_model=FallbackModelsChange,
    responses={**_CHANGE_ERRORS, **error_responses(409, descriptions={409: "One cannot serve"})},
    summary="Change the fallback models (admin)",
)
async def set_fallback_models(
    body: FallbackModelsUpdate,
    registry: RegistryDep,
    sync: RegistrySyncDep,
    engine: EngineDep,
    admin: AdminUser,
) -> FallbackModelsChange:
    """The one of a failing model's task serves in its place. FALLBACK_MODEL seeds a fresh
    database only."""
    refs = [
        _served_ref(registry, ref.strip(), f"models.{index}")
        for index, ref in enumerate(body.models)
    ]
    previous = registry.fallbacks
    await run_in_threadpool(
        serving_state.set_fallback_models, engine, refs=refs, actor=admin.username
    )
    await sync.refresh()
    return FallbackModelsChange(fallback_models=refs, previous=previous)


def _versions(registry: ModelRegistry, name: str) -> list[str]:
    """The versions of ``name`` that can serve; 404 for a model that has none."""
    try:
        return [entry.manifest.version for entry in registry.catalogue.versions(name)]
    except RegistryError as error:
        raise NotFoundError(str(error)) from error


def _check_alias(alias: str, versions: list[str]) -> None:
    try:
        check_alias_name(alias, versions)
    except InvalidAliasError as error:
        raise InvalidRequestError(
            str(error), detail=[{"field": "alias", "problem": str(error)}]
        ) from error


def _served_ref(registry: ModelRegistry, ref: str, field: str) -> str:
    """``ref`` when it names a model that can serve: 422 malformed, 404 unknown, 409 when
    its manifest cannot be read."""
    try:
        registry.resolve(ref)
    except InvalidModelRefError as error:
        detail = [{"field": field, "problem": str(error)}]
        raise InvalidRequestError(str(error), detail=detail) from error
    except ModelUnavailableError as error:
        raise ConflictError(str(error)) from error
    except RegistryError as error:
        raise NotFoundError(str(error)) from error
    return ref


def _unknown_alias(registry: ModelRegistry, name: str, alias: str) -> str:
    aliases = ", ".join(registry.aliases_of(name)) or "none"
    return f"model '{name}' has no alias '{alias}' (aliases: {aliases})"


def _alias_change(change: RegistryChange) -> AliasChange:
    return AliasChange(
        model=change.model_name or "",
        alias=change.alias or "",
        version=change.to_version,
        previous_version=change.from_version,
    )


def _page(engine: Engine, model: str | None, limit: int, offset: int) -> RegistryChangePage:
    rows, total = serving_state.list_changes(engine, model=model, limit=limit, offset=offset)
    return RegistryChangePage(
        total=total, limit=limit, offset=offset, items=[_record(row) for row in rows]
    )


def _record(row: RegistryChange) -> RegistryChangeRecord:
    return RegistryChangeRecord(
        id=row.id or 0,
        changed_at=row.changed_at,
        actor=row.actor,
        action=row.action,
        model=row.model_name,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
    )
