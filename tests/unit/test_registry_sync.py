"""RegistrySync: a worker follows the shared state and carries out every command, in order."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from registry import sync as sync_module
from registry.aliases import ServingState
from registry.catalogue import ModelStatus
from registry.factories import mock_runtimes
from registry.registry import ModelRegistry
from registry.sync import Command, CommandAction, RegistrySync, Snapshot
from tests.helpers import copy_model

POLL_SECONDS = 0.01


class FakeStore:
    """The shared state in memory, as the database would hold it; ``broken`` fails reads."""

    def __init__(self) -> None:
        self.generation_value = 0
        self.state = ServingState("attrition-logreg")
        self.commands: list[Command] = []
        self.broken = False
        self.reads = 0
        self._lock = threading.Lock()

    def change(self, state: ServingState | None = None, *commands: Command) -> None:
        with self._lock:
            self.generation_value += 1
            self.state = state or self.state
            self.commands += commands

    def generation(self) -> int:
        self._check()
        return self.generation_value

    def snapshot(self) -> Snapshot:
        self._check()
        with self._lock:
            self.reads += 1
            last = self.commands[-1].id if self.commands else 0
            return Snapshot(self.generation_value, self.state, last)

    def commands_after(self, change_id: int) -> list[Command]:
        self._check()
        with self._lock:
            return [command for command in self.commands if command.id > change_id]

    def _check(self) -> None:
        if self.broken:
            raise ConnectionError("database is down")


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    store = tmp_path / "models"
    copy_model(store, "attrition-logreg")
    copy_model(store, "attrition-logreg", as_version="2")
    return ModelRegistry.from_dir(store, mock_runtimes, default="attrition-logreg")


def following(
    registry: ModelRegistry, store: FakeStore, body: Callable[[RegistrySync], Awaitable[None]]
) -> None:
    async def run() -> None:
        sync = RegistrySync(registry, store, POLL_SECONDS)
        await sync.start()
        try:
            await body(sync)
        finally:
            await sync.close()

    asyncio.run(run())


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(POLL_SECONDS)


def test_start_applies_the_stored_state_and_skips_older_commands(
    registry: ModelRegistry,
) -> None:
    store = FakeStore()
    store.change(
        ServingState("attrition-logreg@1", (), {"attrition-logreg": {"champion": "1"}}),
        Command(1, CommandAction.LOAD, "attrition-logreg", "2"),
    )

    async def check(_sync: RegistrySync) -> None:
        await asyncio.sleep(POLL_SECONDS * 5)

    following(registry, store, check)
    assert registry.default == "attrition-logreg@1"
    assert registry.resolve("attrition-logreg").ref == "attrition-logreg@1"
    assert registry.loader.loaded_entries() == [], "a command made before the start is history"


def test_the_poll_applies_a_change_and_reads_only_when_the_generation_moves(
    registry: ModelRegistry,
) -> None:
    store = FakeStore()

    async def check(_sync: RegistrySync) -> None:
        await asyncio.sleep(POLL_SECONDS * 5)
        assert store.reads == 1, "only the start read the state: the generation did not move"
        store.change(ServingState("attrition-logreg", (), {"attrition-logreg": {"champion": "1"}}))
        await eventually(lambda: registry.resolve("attrition-logreg").ref == "attrition-logreg@1")

    following(registry, store, check)


def test_commands_are_carried_out_in_order_with_their_outcome(registry: ModelRegistry) -> None:
    store = FakeStore()

    async def check(sync: RegistrySync) -> None:
        store.change(
            None,
            Command(1, CommandAction.LOAD, "attrition-logreg", "2"),
            Command(2, CommandAction.UNLOAD, "attrition-logreg", None),
            Command(3, CommandAction.LOAD, "attrition-logreg", "1"),
            Command(4, CommandAction.LOAD, "attrition-logreg", "9"),
        )
        loaded, unloaded, _, unknown = [await sync.outcome(n) for n in (1, 2, 3, 4)]
        assert (loaded.message, unloaded.message) == ("loaded", "unloaded")
        assert unknown.error is not None and "no version '9'" in unknown.error

    following(registry, store, check)
    [first, second] = registry.catalogue.versions("attrition-logreg")
    assert (first.status, second.status) == (ModelStatus.LOADED, ModelStatus.REGISTERED)


def test_a_reload_rescans_the_store(registry: ModelRegistry, tmp_path: Path) -> None:
    store = FakeStore()

    async def check(sync: RegistrySync) -> None:
        copy_model(tmp_path / "models", "attrition-logreg", as_version="3")
        store.change(None, Command(1, CommandAction.RELOAD))
        assert (await sync.outcome(1)).message == "reloaded"

    following(registry, store, check)
    assert registry.resolve("attrition-logreg").ref == "attrition-logreg@3"


def test_the_poll_outlives_a_database_outage(
    registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="registry.sync")
    store = FakeStore()

    async def check(_sync: RegistrySync) -> None:
        store.broken = True
        await asyncio.sleep(POLL_SECONDS * 5)
        store.broken = False
        store.change(ServingState("attrition-logreg@1"))
        await eventually(lambda: registry.default == "attrition-logreg@1")

    following(registry, store, check)
    outage = [r.message for r in caplog.records if "Cannot read the serving state" in r.message]
    assert len(outage) == 1, "one line for the outage, not one per poll"
    assert any("readable again" in record.message for record in caplog.records)


def test_closing_gives_up_a_query_that_a_frozen_database_holds(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "_CLOSE_TIMEOUT_SECONDS", 0.1)
    store, thawed = FakeStore(), threading.Event()
    frozen = threading.Event()

    def frozen_generation() -> int:
        frozen.set()
        thawed.wait(5)
        return 0

    async def run() -> float:
        sync = RegistrySync(registry, store, POLL_SECONDS)
        await sync.start()
        store.generation = frozen_generation  # type: ignore[method-assign]
        await eventually(frozen.is_set)
        started = time.monotonic()
        await sync.close()
        elapsed = time.monotonic() - started
        thawed.set()  # the thread ends, and asyncio.run with it
        return elapsed

    assert asyncio.run(run()) < 1.0
