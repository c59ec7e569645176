"""The registry's shared state in the database: seeded from the settings once, then followed.

``DEFAULT_MODEL`` and ``FALLBACK_MODEL`` seed a fresh database; afterwards the database
wins (an admin's ``PUT /default-model`` outlives restarts), and a setting that disagrees
with it is logged at start.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from api.errors import ServiceUnavailableError
from api.settings import Settings
from db.serving_state import (
    commands_after,
    read_generation,
    read_state,
    record_command,
    seed_state,
)
from db.tables import ChangeAction
from registry.aliases import ServingState
from registry.registry import ModelRegistry
from registry.sync import Command, CommandAction, CommandOutcome, RegistrySync, Snapshot

logger = logging.getLogger(__name__)


class DatabaseStateStore:
    """``registry.sync.StateStore`` over the tables of ``db.serving_state``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def generation(self) -> int:
        return read_generation(self._engine)

    def snapshot(self) -> Snapshot:
        stored = read_state(self._engine)
        state = ServingState(stored.default_model, tuple(stored.fallback_models), stored.aliases)
        return Snapshot(stored.generation, state, stored.last_change_id)

    def commands_after(self, change_id: int) -> list[Command]:
        return [
            Command(
                change.id or 0, CommandAction(change.action), change.model_name, change.to_version
            )
            for change in commands_after(self._engine, change_id)
        ]


async def start_registry_sync(
    engine: Engine, registry: ModelRegistry, settings: Settings
) -> RegistrySync:
    """Seed the state on a fresh database, apply the stored one, and follow it from now on."""
    await asyncio.to_thread(seed_state, engine, settings.default_model, settings.fallback_models)
    sync = RegistrySync(registry, DatabaseStateStore(engine), settings.registry_poll_seconds)
    await sync.start()
    _warn_about_ignored_settings(registry, settings)
    return sync


def _warn_about_ignored_settings(registry: ModelRegistry, settings: Settings) -> None:
    if registry.default != settings.default_model:
        logger.warning(
            "DEFAULT_MODEL=%s is not used: the database says %s (set with PUT /default-model)",
            settings.default_model,
            registry.default,
        )
    if registry.fallbacks != settings.fallback_models:
        logger.warning(
            "FALLBACK_MODEL=%s is not used: the database says %s (set with PUT /fallback-models)",
            ",".join(settings.fallback_models),
            ",".join(registry.fallbacks),
        )


async def run_on_every_worker(
    engine: Engine,
    sync: RegistrySync,
    action: ChangeAction,
    *,
    actor: str,
    model: str | None = None,
    version: str | None = None,
) -> CommandOutcome:
    """Record a load, unload or reload for every worker; how this one carried it out.

    ``version`` None: every version of ``model``.
    """
    change = await asyncio.to_thread(
        record_command, engine, action=action, actor=actor, model=model, version=version
    )
    assert change.id is not None  # flushed: the database gave it its id
    return await sync.outcome(change.id)


_FAILURE = {ChangeAction.LOAD: "failed to load", ChangeAction.UNLOAD: "could not be unloaded"}


async def load_or_unload_everywhere(
    engine: Engine,
    sync: RegistrySync,
    action: ChangeAction,
    *,
    actor: str,
    model: str,
    version: str | None = None,
) -> str:
    """``run_on_every_worker`` for a load or an unload: this worker's message, or a 503 when
    it failed here (an admin route's answer)."""
    outcome = await run_on_every_worker(
        engine, sync, action, actor=actor, model=model, version=version
    )
    if outcome.error is not None:
        subject = f"{model}@{version}" if version else model
        raise ServiceUnavailableError(f"{subject} {_FAILURE[action]}: {outcome.error}")
    return outcome.message
