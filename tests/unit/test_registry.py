"""The registry: lazy scanning, one load under concurrency, fallback chain, LRU, failures.

Through the facade (``ModelRegistry``) and its parts: the catalogue (lookups), the loader
(loads, LRU, pins) and the fallback policy (which models may serve in place of another).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ml.manifest import ModelManifest
from ml.mock_runtime import MockRuntime
from ml.runtime import ModelRuntime
from registry.catalogue import Catalogue, ModelStatus
from registry.errors import (
    InvalidModelRefError,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from registry.factories import framework_runtimes, mock_runtimes
from registry.fallback import FallbackPolicy
from registry.refs import ModelRef
from registry.registry import ModelRegistry
from registry.store import scan_store
from tests.factories import rewrite_manifest
from tests.helpers import copy_model


class RecordingRuntime(MockRuntime):
    """A mock runtime that notes when it is freed, in the list its factory gave it."""

    def __init__(self, manifest: ModelManifest, model_dir: Path, freed: list[str]) -> None:
        super().__init__(manifest, model_dir)
        self._freed = freed

    def unload(self) -> None:
        self._freed.append(self.manifest.ref)
        super().unload()


class CountingFactory:
    """Makes mock runtimes, slowly, and counts them; names in ``broken`` fail to load.

    ``freed`` lists the runtimes unloaded, in order: a pinned one only once its last user
    is done with it.
    """

    def __init__(self, broken: set[str] | None = None, delay: float = 0.0) -> None:
        self.created: list[str] = []
        self.freed: list[str] = []
        self.broken, self.delay = broken or set(), delay
        self._lock = threading.Lock()

    def __call__(self, manifest: ModelManifest, model_dir: Path) -> ModelRuntime:
        with self._lock:
            self.created.append(manifest.ref)
        time.sleep(self.delay)
        if manifest.ref in self.broken:
            raise RuntimeError(f"{manifest.ref} is broken on purpose")
        return RecordingRuntime(manifest, model_dir, self.freed)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """logreg versions 1 and 2, gbm 1 (same task), and a model of another task."""
    root = tmp_path / "models"
    copy_model(root, "attrition-logreg")
    copy_model(root, "attrition-logreg", as_version="2")
    copy_model(root, "attrition-gbm")
    rewrite_manifest(copy_model(root, "attrition-gbm", as_name="churn-gbm"), task="customer-churn")
    return root


def build(store: Path, factory: object, **options: object) -> ModelRegistry:
    return ModelRegistry.from_dir(store, factory, **options)  # type: ignore[arg-type]


def catalogue_of(store: Path) -> Catalogue:
    return Catalogue(scan_store(store).models)


@dataclass(frozen=True)
class Served:
    """What served one request, noted inside its ``serving`` block."""

    ref: str
    requested: str
    is_fallback: bool
    fallback_reason: str | None


async def serve(registry: ModelRegistry, ref: str | None) -> Served:
    """One request for ``ref``: the model that serves it, pinned for the block only."""
    async with registry.serving(registry.resolve(ref)) as serving:
        return Served(
            serving.manifest.ref,
            serving.requested.ref,
            serving.is_fallback,
            serving.fallback_reason,
        )


# --- catalogue -------------------------------------------------------------------------


def test_scan_reads_manifests_and_loads_nothing(store: Path) -> None:
    factory = CountingFactory()
    registry = build(store, factory, default="attrition-logreg")
    assert registry.catalogue.names() == ["attrition-gbm", "attrition-logreg", "churn-gbm"]
    versions = registry.catalogue.versions("attrition-logreg")
    assert [entry.manifest.version for entry in versions] == ["1", "2"]
    assert factory.created == []
    assert all(entry.status is ModelStatus.REGISTERED for entry in registry.entries())


def test_find_gives_the_latest_or_the_named_version(store: Path) -> None:
    catalogue = catalogue_of(store)
    assert catalogue.find(ModelRef("attrition-logreg")).ref == "attrition-logreg@2"
    assert catalogue.find(ModelRef("attrition-logreg", "1")).ref == "attrition-logreg@1"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (ModelRef("nope"), "model 'nope' is not registered"),
        (ModelRef("nope", "1"), "model 'nope' is not registered"),
        (
            ModelRef("attrition-logreg", "9"),
            r"model 'attrition-logreg' has no version '9' \(versions: 1, 2\)",
        ),
    ],
)
def test_find_rejects_unknown_name_or_version(store: Path, ref: ModelRef, message: str) -> None:
    with pytest.raises(ModelNotFoundError, match=message):
        catalogue_of(store).find(ref)


def test_versions_rejects_an_unknown_name(store: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model 'nope' is not registered"):
        catalogue_of(store).versions("nope")


def test_older_versions_are_newest_first(store: Path) -> None:
    copy_model(store, "attrition-logreg", as_version="10")  # by value, not as text
    catalogue = catalogue_of(store)
    [first, second, latest] = catalogue.versions("attrition-logreg")
    assert latest.ref == "attrition-logreg@10"
    assert list(catalogue.older_versions(latest)) == [second, first]
    assert list(catalogue.older_versions(first)) == []


# --- resolve ---------------------------------------------------------------------------


def test_resolve_gives_latest_version_default_and_pinned(store: Path) -> None:
    registry = build(store, mock_runtimes, default="attrition-logreg@1")
    assert registry.resolve("attrition-logreg").ref == "attrition-logreg@2"
    assert registry.resolve("attrition-logreg@1").ref == "attrition-logreg@1"
    assert registry.resolve(None).ref == "attrition-logreg@1"


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("nope", ModelNotFoundError),
        ("attrition-logreg@9", ModelNotFoundError),
        ("Bad Name!", InvalidModelRefError),
        ("a@b@c", InvalidModelRefError),
    ],
)
def test_resolve_rejects_unknown_or_malformed_refs(store: Path, ref: str, error: type) -> None:
    registry = build(store, mock_runtimes)
    with pytest.raises(error):
        registry.resolve(ref)


def test_resolve_unknown_version_lists_known_versions(store: Path) -> None:
    registry = build(store, mock_runtimes)
    with pytest.raises(ModelNotFoundError, match="versions: 1, 2"):
        registry.resolve("attrition-logreg@7")


def test_is_default_compares_the_default_models_name(store: Path) -> None:
    registry = build(store, mock_runtimes, default="attrition-logreg@1")
    assert registry.is_default("attrition-logreg")
    assert not registry.is_default("attrition-gbm")
    assert not build(store, mock_runtimes).is_default("attrition-logreg")


def test_facade_shows_its_configuration(store: Path) -> None:
    registry = build(
        store, mock_runtimes, default="attrition-gbm", fallbacks=["attrition-gbm"], max_loaded=3
    )
    assert (registry.default, registry.fallbacks, registry.max_loaded, registry.root) == (
        "attrition-gbm",
        ["attrition-gbm"],
        3,
        store,
    )
    assert registry.fallback_policy.fallbacks == ["attrition-gbm"]
    assert registry.loader.max_loaded == 3
    assert build(store, mock_runtimes, max_loaded=0).max_loaded is None, "0 is no limit"


# --- fallback policy -------------------------------------------------------------------


def test_candidates_are_older_versions_then_the_tasks_fallbacks(store: Path) -> None:
    copy_model(store, "attrition-logreg", as_version="3")
    copy_model(store, "attrition-gbm", as_version="2")
    catalogue = catalogue_of(store)
    policy = FallbackPolicy(
        catalogue,
        # Another task's model, the model itself, unknown and malformed refs: all skipped.
        ["churn-gbm", "attrition-logreg", "nope", "Bad Name!", "attrition-gbm"],
    )
    requested = catalogue.find(ModelRef("attrition-logreg", "3"))
    assert [entry.ref for entry in policy.candidates(requested)] == [
        "attrition-logreg@2",
        "attrition-logreg@1",
        "attrition-gbm@2",
        "attrition-gbm@1",
    ]
    oldest = catalogue.find(ModelRef("attrition-logreg", "1"))
    assert [entry.ref for entry in policy.candidates(oldest)] == [
        "attrition-gbm@2",
        "attrition-gbm@1",
    ]


def test_candidates_of_a_fallback_model_skip_itself(store: Path) -> None:
    copy_model(store, "attrition-gbm", as_version="2")
    catalogue = catalogue_of(store)
    policy = FallbackPolicy(catalogue, ["attrition-gbm"])
    requested = catalogue.find(ModelRef("attrition-gbm"))
    assert [entry.ref for entry in policy.candidates(requested)] == ["attrition-gbm@1"]
    other_task = catalogue.find(ModelRef("churn-gbm"))
    assert list(policy.candidates(other_task)) == [], "no fallback of another task"


# --- serving ---------------------------------------------------------------------------


def test_concurrent_first_requests_load_the_model_once(store: Path) -> None:
    factory = CountingFactory(delay=0.2)
    registry = build(store, factory)

    async def many_requests() -> list[str]:
        served = await asyncio.gather(*(serve(registry, "attrition-gbm") for _ in range(16)))
        return [one.ref for one in served]

    assert asyncio.run(many_requests()) == ["attrition-gbm@1"] * 16
    assert factory.created == ["attrition-gbm@1"]
    assert registry.resolve("attrition-gbm").status is ModelStatus.LOADED


def test_failed_load_is_served_by_previous_version(store: Path) -> None:
    registry = build(store, CountingFactory(broken={"attrition-logreg@2"}))
    served = asyncio.run(serve(registry, "attrition-logreg"))
    assert served.ref == "attrition-logreg@1"
    assert served.requested == "attrition-logreg@2"
    assert served.is_fallback and "broken on purpose" in (served.fallback_reason or "")
    failed = registry.resolve("attrition-logreg@2")
    assert failed.status is ModelStatus.FAILED and "broken on purpose" in (failed.error or "")


def test_without_older_version_the_tasks_fallback_model_serves(store: Path) -> None:
    registry = build(
        store,
        CountingFactory(broken={"attrition-logreg@2", "attrition-logreg@1"}),
        fallbacks=["churn-gbm", "attrition-gbm"],
    )
    served = asyncio.run(serve(registry, "attrition-logreg"))
    # churn-gbm is of another task: never a fallback for attrition.
    assert served.ref == "attrition-gbm@1"
    assert served.is_fallback


def test_no_usable_fallback_is_unavailable(store: Path) -> None:
    registry = build(store, CountingFactory(broken={"attrition-gbm@1"}), fallbacks=["churn-gbm"])
    with pytest.raises(ModelUnavailableError, match="no fallback"):
        asyncio.run(serve(registry, "attrition-gbm"))


def test_runtime_failure_walks_the_chain_without_going_round(store: Path) -> None:
    registry = build(store, mock_runtimes, fallbacks=["attrition-gbm"])

    async def request() -> list[Served]:
        steps: list[Served] = []
        async with registry.serving(registry.resolve("attrition-logreg")) as serving:
            for reason in ["boom", "boom again"]:
                await serving.fall_back(reason)
                steps.append(
                    Served(
                        serving.manifest.ref,
                        serving.requested.ref,
                        serving.is_fallback,
                        serving.fallback_reason,
                    )
                )
            with pytest.raises(ModelUnavailableError):
                await serving.fall_back("all broken")
        return steps

    second, third = asyncio.run(request())
    assert second == Served("attrition-logreg@1", "attrition-logreg@2", True, "boom")
    assert third == Served("attrition-gbm@1", "attrition-logreg@2", True, "boom again")


def test_serving_outside_its_block_has_no_model(store: Path) -> None:
    registry = build(store, mock_runtimes)

    async def request() -> None:
        serving = registry.serving(registry.resolve("attrition-gbm"))
        async with serving:
            pass
        assert serving.runtime is None and not serving.is_fallback
        with pytest.raises(RuntimeError, match="async with"):
            serving.manifest  # noqa: B018 - the property raises

    asyncio.run(request())


@pytest.mark.parametrize("block_raises", [False, True], ids=["returns", "raises"])
def test_serving_frees_an_admin_unload_only_after_the_block(
    store: Path, block_raises: bool
) -> None:
    factory = CountingFactory()
    registry = build(store, factory)
    entry = registry.resolve("attrition-gbm")
    during: dict[str, object] = {}

    async def request() -> None:
        async with registry.serving(entry) as serving:
            assert serving.runtime is not None
            assert registry.loader.unload(entry) is True  # an admin unload meanwhile
            during.update(freed=list(factory.freed), ready=serving.runtime.ready)
            if block_raises:
                raise ValueError("the request failed")

    if block_raises:
        with pytest.raises(ValueError, match="the request failed"):
            asyncio.run(request())
    else:
        asyncio.run(request())
    assert during == {"freed": [], "ready": True}, "still usable by the request using it"
    assert factory.freed == ["attrition-gbm@1"], "freed once the block ended"
    assert entry.runtime is None and entry.status is ModelStatus.REGISTERED
    assert registry.loader.loaded_entries() == []


@pytest.mark.parametrize(
    ("reasons", "last_served"),
    [
        (["boom"], "attrition-logreg@1"),
        (["boom", "boom again"], "attrition-gbm@1"),
        (["boom", "boom again", "all broken"], None),  # ends in ModelUnavailableError
    ],
)
def test_fall_back_then_leaving_the_block_leaves_no_pin(
    store: Path, reasons: list[str], last_served: str | None
) -> None:
    factory = CountingFactory()
    registry = build(store, factory, fallbacks=["attrition-gbm"])

    async def request() -> str | None:
        async with registry.serving(registry.resolve("attrition-logreg")) as serving:
            try:
                for reason in reasons:
                    await serving.fall_back(reason)
            except ModelUnavailableError:
                return None
            return serving.manifest.ref

    assert asyncio.run(request()) == last_served
    loaded = sorted(entry.ref for entry in registry.loader.loaded_entries())
    assert len(loaded) == min(len(reasons) + 1, 3)  # the one asked for and each fallback
    registry.loader.unload_all()
    # Freed at once: a runtime still pinned would wait for a user that is gone.
    assert sorted(factory.freed) == loaded


def test_fallback_after_a_failed_load_leaves_no_pin(store: Path) -> None:
    factory = CountingFactory(broken={"attrition-logreg@2"})
    registry = build(store, factory)
    assert asyncio.run(serve(registry, "attrition-logreg")).ref == "attrition-logreg@1"
    registry.loader.unload(registry.resolve("attrition-logreg@1"))
    assert factory.freed == ["attrition-logreg@1"]


def test_unpin_frees_an_unloaded_runtime_only_after_its_last_user(store: Path) -> None:
    factory = CountingFactory()
    registry = build(store, factory)
    entry = registry.resolve("attrition-gbm")
    loader = registry.loader

    async def scenario() -> list[list[str]]:
        first = await loader.pin(entry)
        second = await loader.pin(entry)
        assert first is not None and first is second
        loader.unload(entry)
        seen = [list(factory.freed)]
        loader.unpin(first)
        seen.append(list(factory.freed))
        loader.unpin(second)
        seen.append(list(factory.freed))
        return seen

    assert asyncio.run(scenario()) == [[], [], ["attrition-gbm@1"]]


def test_pin_gives_none_when_the_model_cannot_load(store: Path) -> None:
    registry = build(store, CountingFactory(broken={"attrition-gbm@1"}))
    entry = registry.resolve("attrition-gbm")
    assert asyncio.run(registry.loader.pin(entry)) is None
    assert entry.status is ModelStatus.FAILED


# --- loader ----------------------------------------------------------------------------


def test_failed_model_is_not_retried_until_asked(store: Path) -> None:
    factory = CountingFactory(broken={"attrition-gbm@1"})
    registry = build(store, factory)
    entry = registry.resolve("attrition-gbm")
    for _ in range(3):
        with pytest.raises(ModelLoadError):
            registry.loader.load(entry)
    assert factory.created == ["attrition-gbm@1"]
    factory.broken = set()
    registry.loader.load(entry, retry_failed=True)
    assert entry.status is ModelStatus.LOADED and entry.error is None


def test_max_loaded_models_unloads_least_recently_used(store: Path) -> None:
    registry = build(store, mock_runtimes, max_loaded=2)

    async def use(*refs: str) -> None:
        for ref in refs:
            await serve(registry, ref)

    asyncio.run(use("attrition-logreg", "attrition-gbm", "attrition-logreg", "churn-gbm"))
    loaded = [entry.ref for entry in registry.loader.loaded_entries()]
    assert loaded == ["attrition-logreg@2", "churn-gbm@1"]
    assert registry.resolve("attrition-gbm").status is ModelStatus.REGISTERED
    assert registry.resolve("attrition-gbm").runtime is None


def test_unload_and_rescan(store: Path) -> None:
    registry = build(store, mock_runtimes)
    entry = registry.resolve("attrition-gbm")
    registry.loader.load(entry)
    assert registry.loader.unload(entry) is True
    assert registry.loader.unload(entry) is False
    copy_model(store, "attrition-gbm", as_version="2")
    registry.rescan()
    assert registry.resolve("attrition-gbm").ref == "attrition-gbm@2"


def test_rescan_unloads_every_model(store: Path) -> None:
    factory = CountingFactory()
    registry = build(store, factory)
    registry.preload(["attrition-gbm", "attrition-logreg"])
    registry.rescan()
    assert sorted(factory.freed) == ["attrition-gbm@1", "attrition-logreg@2"]
    assert registry.loader.loaded_entries() == []
    assert all(entry.status is ModelStatus.REGISTERED for entry in registry.entries())


def test_rescan_needs_a_store_folder(store: Path) -> None:
    registry = ModelRegistry(scan_store(store).models, mock_runtimes)
    with pytest.raises(ModelLoadError, match="not built from a model store"):
        registry.rescan()


def test_preload_loads_models_and_shows_failures_without_raising(store: Path) -> None:
    registry = build(store, CountingFactory(broken={"attrition-logreg@2"}))
    registry.preload(["attrition-gbm", "attrition-logreg", "nope"])
    assert registry.resolve("attrition-gbm").status is ModelStatus.LOADED
    assert registry.resolve("attrition-logreg").status is ModelStatus.FAILED


def test_hash_mismatch_refuses_to_unpickle(store: Path) -> None:
    artifact = store / "attrition-gbm" / "1" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    registry = build(store, framework_runtimes("cpu"))
    entry = registry.resolve("attrition-gbm")
    with pytest.raises(ModelLoadError, match="refusing to load"):
        registry.loader.load(entry)
    assert entry.status is ModelStatus.FAILED


def test_unknown_framework_fails_to_load(store: Path) -> None:
    rewrite_manifest(store / "attrition-gbm" / "1", framework="tensorflow")
    registry = build(store, framework_runtimes("cpu"))
    with pytest.raises(ModelLoadError, match="unknown framework 'tensorflow'"):
        registry.loader.load(registry.resolve("attrition-gbm"))


# --- store scan ------------------------------------------------------------------------


def test_bad_manifests_are_skipped_and_reported(store: Path) -> None:
    (store / "broken" / "1").mkdir(parents=True)
    (store / "broken" / "1" / "manifest.json").write_text("{not json")
    misplaced = copy_model(store, "attrition-gbm", as_name="misplaced")
    misplaced.rename(misplaced.parent / "3")
    registry = build(store, mock_runtimes)
    names = registry.catalogue.names()
    assert "broken" not in names and "misplaced" not in names
    assert len(registry.problems) == 2
    assert any("lies in misplaced/3" in problem for problem in registry.problems)


def test_missing_store_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    registry = build(tmp_path / "nowhere", mock_runtimes, default="attrition-logreg")
    assert registry.catalogue.names() == []
    assert registry.problems and "does not exist" in registry.problems[0]
    with pytest.raises(ModelNotFoundError):
        registry.resolve(None)


@pytest.mark.parametrize("artifact", ["../../etc/passwd", "/etc/passwd", "sub/model.joblib", ".."])
def test_a_manifest_cannot_point_outside_its_folder(store: Path, artifact: str) -> None:
    path = store / "attrition-gbm" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["artifact"] = artifact
    path.write_text(json.dumps(manifest))
    registry = build(store, framework_runtimes("cpu"))
    assert "attrition-gbm" not in registry.catalogue.names()
    assert any("artifact" in problem for problem in registry.problems)


# --- eviction under use ----------------------------------------------------------------


class SlowRuntime(MockRuntime):
    """Predicts only after ``gate`` opens; refuses once unloaded, as real runtimes do."""

    gate = threading.Event()

    def predict(self, instances):  # type: ignore[no-untyped-def]
        assert self.gate.wait(5)
        if not self.ready:
            raise RuntimeError("used after unload")
        return super().predict(instances)


def test_eviction_waits_for_the_requests_using_the_model(store: Path) -> None:
    registry = build(store, lambda m, d: SlowRuntime(m, d), max_loaded=1)
    SlowRuntime.gate.clear()

    async def scenario() -> tuple[str, bool, bool]:
        async with registry.serving(registry.resolve("attrition-logreg")) as serving:
            runtime = serving.runtime
            assert runtime is not None
            in_flight = asyncio.create_task(asyncio.to_thread(runtime.predict, [{"Age": 30}]))
            await serve(registry, "attrition-gbm")  # evicts logreg while it predicts
            evicted_but_alive = runtime.ready
            SlowRuntime.gate.set()
            [prediction] = await in_flight
        return prediction.label, evicted_but_alive, runtime.ready

    label, alive_while_used, ready_after = asyncio.run(scenario())
    assert label in ("No", "Yes")
    assert alive_while_used, "an evicted model must stay usable by the request using it"
    assert not ready_after, "leaving the last block frees it"
    assert [entry.ref for entry in registry.loader.loaded_entries()] == ["attrition-gbm@1"]
