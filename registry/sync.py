"""Every worker on the state the database holds: aliases, default, fallbacks, and commands.

The registry of each worker process serves from memory; a ``RegistrySync`` keeps it on the
shared state. It polls a generation counter (one cheap query every ``interval`` seconds,
on a thread, never on the event loop) and, when it moved, reads the state again and
applies it, then carries out the loads, unloads and reloads recorded since, in order.
A worker that makes a change applies it at once (``refresh``), the others at their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from registry.aliases import ServingState
from registry.catalogue import ModelEntry
from registry.errors import RegistryError
from registry.refs import ModelRef
from registry.registry import ModelRegistry

logger = logging.getLogger(__name__)

_KEPT_OUTCOMES = 256
_CLOSE_TIMEOUT_SECONDS = 2.0


class CommandAction(StrEnum):
    LOAD = "load"
    UNLOAD = "unload"
    RELOAD = "reload"


@dataclass(frozen=True, slots=True)
class Command:
    """A load, unload or reload that every worker carries out; ``version`` None: all."""

    id: int
    action: CommandAction
    model: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The serving state at one generation, and the id of the last command recorded then."""

    generation: int
    state: ServingState
    last_change_id: int


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What carrying out a command did on this worker."""

    message: str
    error: str | None = None


class StateStore(Protocol):
    """Where the shared state lives (the database); every call blocks."""

    def generation(self) -> int: ...

    def snapshot(self) -> Snapshot: ...

    def commands_after(self, change_id: int) -> list[Command]: ...


class RegistrySync:
    """Keeps ``registry`` on ``store``'s state; ``start`` it in the app, ``close`` at the end."""

    def __init__(self, registry: ModelRegistry, store: StateStore, interval: float) -> None:
        self._registry, self._store, self._interval = registry, store, interval
        self._generation: int | None = None
        self._last_change_id = 0
        self._lock = asyncio.Lock()
        self._commands: asyncio.Queue[Command | None] = asyncio.Queue()  # None: stop
        self._outcomes: OrderedDict[int, asyncio.Future[CommandOutcome]] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._is_failing = False

    async def start(self) -> None:
        """Apply the stored state now, then follow it; commands made before are history."""
        snapshot = await asyncio.to_thread(self._store.snapshot)
        self._registry.apply_state(snapshot.state)
        self._generation, self._last_change_id = snapshot.generation, snapshot.last_change_id
        self._tasks = [
            asyncio.create_task(self._poll(), name="registry-poll"),
            asyncio.create_task(self._carry_out_commands(), name="registry-commands"),
        ]

    async def close(self) -> None:
        """Stop following, once the query or command in progress is done: cancelling its
        task would leave its thread using a connection of an engine about to be disposed.
        A query that a frozen database holds is given up after ``_CLOSE_TIMEOUT_SECONDS``."""
        self._stopping.set()
        self._commands.put_nowait(None)
        _done, pending = await asyncio.wait(self._tasks, timeout=_CLOSE_TIMEOUT_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def refresh(self) -> None:
        """Apply what the store holds now: the state, and the commands not seen yet."""
        async with self._lock:
            snapshot = await asyncio.to_thread(self._store.snapshot)
            commands = await asyncio.to_thread(self._store.commands_after, self._last_change_id)
            self._registry.apply_state(snapshot.state)
            self._generation = snapshot.generation
            for command in commands:
                self._enqueue(command)

    async def outcome(self, change_id: int) -> CommandOutcome:
        """How this worker carried out command ``change_id``, once it has."""
        if change_id not in self._outcomes:
            await self.refresh()
        future = self._outcomes.get(change_id)
        if future is None:
            raise LookupError(f"command {change_id} is not one this worker has seen")
        return await asyncio.shield(future)

    def _enqueue(self, command: Command) -> None:
        if command.id <= self._last_change_id:
            return
        self._last_change_id = command.id
        self._outcomes[command.id] = asyncio.get_running_loop().create_future()
        while len(self._outcomes) > _KEPT_OUTCOMES:
            self._outcomes.popitem(last=False)
        self._commands.put_nowait(command)

    async def _poll(self) -> None:
        while not await self._stops_within(self._interval):
            try:
                generation = await asyncio.to_thread(self._store.generation)
                if generation != self._generation:
                    await self.refresh()
            except Exception as error:  # noqa: BLE001 - a database outage must not end the poll
                self._report_failure(error)
            else:
                self._report_recovery()

    async def _stops_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _carry_out_commands(self) -> None:
        # One at a time, in order: an unload must not overtake the load before it.
        while not self._stopping.is_set():
            command = await self._commands.get()
            if command is None:
                return
            outcome = await self._carry_out(command)
            future = self._outcomes.get(command.id)
            if future is not None and not future.done():
                future.set_result(outcome)

    async def _carry_out(self, command: Command) -> CommandOutcome:
        try:
            return await self._action(command)
        except RegistryError as error:
            logger.warning("Could not %s as asked: %s", _described(command), error)
            return CommandOutcome("failed", str(error))
        except Exception as error:  # noqa: BLE001 - the next commands must still run
            logger.exception("Could not %s as asked", _described(command))
            return CommandOutcome("failed", str(error) or type(error).__name__)

    async def _action(self, command: Command) -> CommandOutcome:
        registry = self._registry
        if command.action is CommandAction.RELOAD:
            # Under the lock: a state applied during the rescan would be lost to the one the
            # rescan read when it began.
            async with self._lock:
                await asyncio.to_thread(registry.rescan)
            return CommandOutcome("reloaded")
        entries = _entries(registry, command)
        if command.action is CommandAction.LOAD:
            for entry in entries:
                await asyncio.to_thread(registry.loader.load, entry, retry_failed=True)
            return CommandOutcome("loaded")
        unloaded = [await asyncio.to_thread(registry.loader.unload, entry) for entry in entries]
        return CommandOutcome("unloaded" if any(unloaded) else "was not loaded")

    def _report_failure(self, error: Exception) -> None:
        if not self._is_failing:
            logger.warning(
                "Cannot read the serving state (%s: %s): serving the last one read until it can",
                type(error).__name__,
                (str(error).splitlines() or [""])[0],
            )
        self._is_failing = True

    def _report_recovery(self) -> None:
        if self._is_failing:
            logger.info("Serving state readable again")
        self._is_failing = False


def _entries(registry: ModelRegistry, command: Command) -> list[ModelEntry]:
    if command.model is None:
        raise RegistryError(f"{command.action} needs a model")
    if command.version is None:
        return list(registry.catalogue.versions(command.model))
    return [registry.catalogue.find(ModelRef(command.model, command.version))]


def _described(command: Command) -> str:
    target = command.model or ""
    if command.version is not None:
        target += f"@{command.version}"
    return f"{command.action} {target}".strip()
