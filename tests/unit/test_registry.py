"""The registry: lazy scanning, one load under concurrency, fallback chain, LRU, failures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from ml.manifest import ModelManifest
from ml.mock_runtime import MockRuntime
from ml.runtime import ModelRuntime
from registry.errors import (
    InvalidModelRefError,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from registry.factories import framework_runtimes, mock_runtimes
from registry.registry import ModelRegistry, ModelStatus
from tests.helpers import copy_model


class CountingFactory:
    """Makes mock runtimes, slowly, and counts them; names in ``broken`` fail to load."""

    def __init__(self, broken: set[str] | None = None, delay: float = 0.0) -> None:
        self.created: list[str] = []
        self.broken, self.delay = broken or set(), delay
        self._lock = threading.Lock()

    def __call__(self, manifest: ModelManifest, model_dir: Path) -> ModelRuntime:
        with self._lock:
            self.created.append(manifest.ref)
        time.sleep(self.delay)
        if manifest.ref in self.broken:
            raise RuntimeError(f"{manifest.ref} is broken on purpose")
        return MockRuntime(manifest, model_dir)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """logreg versions 1 and 2, gbm 1 (same task), and a model of another task."""
    root = tmp_path / "models"
    copy_model(root, "attrition-logreg")
    copy_model(root, "attrition-logreg", as_version="2")
    copy_model(root, "attrition-gbm")
    other = copy_model(root, "attrition-gbm", as_name="churn-gbm")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["task"] = "customer-churn"
    (other / "manifest.json").write_text(json.dumps(manifest))
    return root


def build(store: Path, factory: object, **options: object) -> ModelRegistry:
    return ModelRegistry.from_dir(store, factory, **options)  # type: ignore[arg-type]


def test_scan_reads_manifests_and_loads_nothing(store: Path) -> None:
    factory = CountingFactory()
    registry = build(store, factory, default="attrition-logreg")
    assert registry.names() == ["attrition-gbm", "attrition-logreg", "churn-gbm"]
    assert [e.manifest.version for e in registry.versions("attrition-logreg")] == ["1", "2"]
    assert factory.created == []
    assert all(entry.status is ModelStatus.REGISTERED for entry in registry.entries())


def test_entry_resolves_latest_version_default_and_pinned(store: Path) -> None:
    registry = build(store, mock_runtimes, default="attrition-logreg@1")
    assert registry.entry("attrition-logreg").ref == "attrition-logreg@2"
    assert registry.entry("attrition-logreg@1").ref == "attrition-logreg@1"
    assert registry.entry(None).ref == "attrition-logreg@1"


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("nope", ModelNotFoundError),
        ("attrition-logreg@9", ModelNotFoundError),
        ("Bad Name!", InvalidModelRefError),
        ("a@b@c", InvalidModelRefError),
    ],
)
def test_entry_rejects_unknown_or_malformed_refs(store: Path, ref: str, error: type) -> None:
    registry = build(store, mock_runtimes)
    with pytest.raises(error):
        registry.entry(ref)


def test_unknown_version_error_lists_known_versions(store: Path) -> None:
    registry = build(store, mock_runtimes)
    with pytest.raises(ModelNotFoundError, match="versions: 1, 2"):
        registry.entry("attrition-logreg@7")


def test_concurrent_first_requests_load_the_model_once(store: Path) -> None:
    factory = CountingFactory(delay=0.2)
    registry = build(store, factory)

    async def many_requests() -> list[str]:
        served = await asyncio.gather(*(registry.acquire("attrition-gbm") for _ in range(16)))
        return [model.manifest.ref for model in served]

    assert asyncio.run(many_requests()) == ["attrition-gbm@1"] * 16
    assert factory.created == ["attrition-gbm@1"]
    assert registry.entry("attrition-gbm").status is ModelStatus.LOADED


def test_failed_load_is_served_by_previous_version(store: Path) -> None:
    registry = build(store, CountingFactory(broken={"attrition-logreg@2"}))
    served = asyncio.run(registry.acquire("attrition-logreg"))
    assert served.manifest.ref == "attrition-logreg@1"
    assert served.requested.ref == "attrition-logreg@2"
    assert served.is_fallback and "broken on purpose" in (served.fallback_reason or "")
    failed = registry.entry("attrition-logreg@2")
    assert failed.status is ModelStatus.FAILED and "broken on purpose" in (failed.error or "")


def test_without_older_version_the_tasks_fallback_model_serves(store: Path) -> None:
    registry = build(
        store,
        CountingFactory(broken={"attrition-logreg@2", "attrition-logreg@1"}),
        fallbacks=["churn-gbm", "attrition-gbm"],
    )
    served = asyncio.run(registry.acquire("attrition-logreg"))
    # churn-gbm is of another task: never a fallback for attrition.
    assert served.manifest.ref == "attrition-gbm@1"
    assert served.is_fallback


def test_no_usable_fallback_is_unavailable(store: Path) -> None:
    registry = build(store, CountingFactory(broken={"attrition-gbm@1"}), fallbacks=["churn-gbm"])
    with pytest.raises(ModelUnavailableError, match="no fallback"):
        asyncio.run(registry.acquire("attrition-gbm"))


def test_failed_model_is_not_retried_until_asked(store: Path) -> None:
    factory = CountingFactory(broken={"attrition-gbm@1"})
    registry = build(store, factory)
    entry = registry.entry("attrition-gbm")
    for _ in range(3):
        with pytest.raises(ModelLoadError):
            registry.load(entry)
    assert factory.created == ["attrition-gbm@1"]
    factory.broken = set()
    registry.load(entry, retry_failed=True)
    assert entry.status is ModelStatus.LOADED and entry.error is None


def test_runtime_failure_walks_the_chain_without_going_round(store: Path) -> None:
    registry = build(store, mock_runtimes, fallbacks=["attrition-gbm"])
    served = asyncio.run(registry.acquire("attrition-logreg"))
    tried: set[str] = set()
    second = asyncio.run(registry.fallback_after_failure(served, "boom", tried))
    assert second.manifest.ref == "attrition-logreg@1"
    third = asyncio.run(registry.fallback_after_failure(second, "boom again", tried))
    assert third.manifest.ref == "attrition-gbm@1"
    with pytest.raises(ModelUnavailableError):
        asyncio.run(registry.fallback_after_failure(third, "all broken", tried))


def test_max_loaded_models_unloads_least_recently_used(store: Path) -> None:
    registry = build(store, mock_runtimes, max_loaded=2)

    async def use(*refs: str) -> None:
        for ref in refs:
            await registry.acquire(ref)

    asyncio.run(use("attrition-logreg", "attrition-gbm", "attrition-logreg", "churn-gbm"))
    loaded = [entry.ref for entry in registry.loaded_entries()]
    assert loaded == ["attrition-logreg@2", "churn-gbm@1"]
    assert registry.entry("attrition-gbm").status is ModelStatus.REGISTERED
    assert registry.entry("attrition-gbm").runtime is None


def test_unload_and_rescan(store: Path) -> None:
    registry = build(store, mock_runtimes)
    entry = registry.entry("attrition-gbm")
    registry.load(entry)
    assert registry.unload(entry) is True
    assert registry.unload(entry) is False
    copy_model(store, "attrition-gbm", as_version="2")
    registry.rescan()
    assert registry.entry("attrition-gbm").ref == "attrition-gbm@2"


def test_hash_mismatch_refuses_to_unpickle(store: Path) -> None:
    artifact = store / "attrition-gbm" / "1" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    registry = build(store, framework_runtimes("cpu"))
    entry = registry.entry("attrition-gbm")
    with pytest.raises(ModelLoadError, match="refusing to load"):
        registry.load(entry)
    assert entry.status is ModelStatus.FAILED


def test_unknown_framework_fails_to_load(store: Path) -> None:
    path = store / "attrition-gbm" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["framework"] = "tensorflow"
    path.write_text(json.dumps(manifest))
    registry = build(store, framework_runtimes("cpu"))
    with pytest.raises(ModelLoadError, match="unknown framework 'tensorflow'"):
        registry.load(registry.entry("attrition-gbm"))


def test_bad_manifests_are_skipped_and_reported(store: Path) -> None:
    (store / "broken" / "1").mkdir(parents=True)
    (store / "broken" / "1" / "manifest.json").write_text("{not json")
    misplaced = copy_model(store, "attrition-gbm", as_name="misplaced")
    misplaced.rename(misplaced.parent / "3")
    registry = build(store, mock_runtimes)
    assert "broken" not in registry.names() and "misplaced" not in registry.names()
    assert len(registry.problems) == 2
    assert any("lies in misplaced/3" in problem for problem in registry.problems)


def test_missing_store_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    registry = build(tmp_path / "nowhere", mock_runtimes, default="attrition-logreg")
    assert registry.names() == []
    assert registry.problems and "does not exist" in registry.problems[0]
    with pytest.raises(ModelNotFoundError):
        registry.entry()


@pytest.mark.parametrize("artifact", ["../../etc/passwd", "/etc/passwd", "sub/model.joblib", ".."])
def test_a_manifest_cannot_point_outside_its_folder(store: Path, artifact: str) -> None:
    path = store / "attrition-gbm" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["artifact"] = artifact
    path.write_text(json.dumps(manifest))
    registry = build(store, framework_runtimes("cpu"))
    assert "attrition-gbm" not in registry.names()
    assert any("artifact" in problem for problem in registry.problems)


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
        served = await registry.acquire("attrition-logreg")
        in_flight = asyncio.create_task(asyncio.to_thread(served.runtime.predict, [{"Age": 30}]))
        await registry.acquire("attrition-gbm")  # evicts logreg while it predicts
        evicted_but_alive = served.runtime.ready
        SlowRuntime.gate.set()
        [prediction] = await in_flight
        registry.release(served)
        return prediction.label, evicted_but_alive, served.runtime.ready

    label, alive_while_used, ready_after = asyncio.run(scenario())
    assert label in ("No", "Yes")
    assert alive_while_used, "an evicted model must stay usable by the request using it"
    assert not ready_after, "the last release frees it"
    assert [entry.ref for entry in registry.loaded_entries()] == ["attrition-gbm@1"]
