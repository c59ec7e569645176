"""The lazy model registry: which models exist, which are loaded, who serves a request.

Start-up reads manifests only. A model's artifact is read, hash-checked and loaded the
first time a request needs it, once even under concurrent first requests. When a model
cannot be loaded or fails, its fallback serves: the model's previous good version, else
the fallback model of the same task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from ml.errors import describe_error
from ml.manifest import ModelManifest
from ml.runtime import ModelRuntime
from registry.errors import (
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
    RegistryError,
)
from registry.hashing import verify_artifact
from registry.refs import ModelRef, parse_model_ref, version_sort_key
from registry.store import StoredModel, scan_store

logger = logging.getLogger(__name__)

RuntimeFactory = Callable[[ModelManifest, Path], ModelRuntime]


class ModelStatus(StrEnum):
    REGISTERED = "registered"
    LOADED = "loaded"
    FAILED = "failed"


class RegistryListener(Protocol):
    """Told about lifecycle events (the API turns them into Prometheus metrics)."""

    def model_loaded(self, manifest: ModelManifest, seconds: float) -> None: ...

    def model_unloaded(self, manifest: ModelManifest) -> None: ...

    def model_failed(self, manifest: ModelManifest, error: str) -> None: ...

    def fallback_used(
        self, requested: ModelManifest, served: ModelManifest, reason: str
    ) -> None: ...


@dataclass(eq=False)
class ModelEntry:
    """One registered model version and its runtime state."""

    manifest: ModelManifest
    model_dir: Path
    status: ModelStatus = ModelStatus.REGISTERED
    error: str | None = None
    runtime: ModelRuntime | None = None
    loaded_at: datetime | None = None
    load_seconds: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ref(self) -> str:
        return self.manifest.ref


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The runtime that serves a request, and the model the client asked for."""

    runtime: ModelRuntime
    requested: ModelManifest
    fallback_reason: str | None = None

    @property
    def manifest(self) -> ModelManifest:
        return self.runtime.manifest

    @property
    def is_fallback(self) -> bool:
        return self.fallback_reason is not None


class ModelRegistry:
    """Registered models by name and version, loaded lazily, bounded by an LRU."""

    def __init__(
        self,
        models: Sequence[StoredModel],
        runtime_factory: RuntimeFactory,
        *,
        default: str | None = None,
        fallbacks: Sequence[str] = (),
        max_loaded: int | None = None,
        listener: RegistryListener | None = None,
        problems: Sequence[str] = (),
        root: Path | None = None,
    ) -> None:
        self.root = root
        self.default = default
        self.fallbacks = list(fallbacks)
        self.max_loaded = max_loaded if max_loaded and max_loaded > 0 else None
        self.problems = list(problems)
        self.scanned_at = datetime.now(UTC)
        self._runtime_factory = runtime_factory
        self._listener = listener
        self._lru: OrderedDict[str, ModelEntry] = OrderedDict()
        # Guards the LRU and the pins: which runtimes requests are using right now, and
        # which of those were unloaded meanwhile and must be freed when the last one ends.
        self._lru_lock = threading.Lock()
        self._users: dict[ModelRuntime, int] = {}
        self._retired: set[ModelRuntime] = set()
        self._versions = self._index(models)
        self._check_configured_refs()

    @classmethod
    def from_dir(
        cls,
        root: Path,
        runtime_factory: RuntimeFactory,
        *,
        default: str | None = None,
        fallbacks: Sequence[str] = (),
        max_loaded: int | None = None,
        listener: RegistryListener | None = None,
    ) -> ModelRegistry:
        """Scan ``root`` for manifests (no artifact is read) and build the registry."""
        scan = scan_store(root)
        logger.info("Registered %d model versions from %s", len(scan.models), root)
        return cls(
            scan.models,
            runtime_factory,
            default=default,
            fallbacks=fallbacks,
            max_loaded=max_loaded,
            listener=listener,
            problems=scan.problems,
            root=root,
        )

    # --- lookups -------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[ModelEntry]:
        """Every version of ``name``, oldest first; ``ModelNotFoundError`` if unknown."""
        try:
            return self._versions[name]
        except KeyError:
            raise ModelNotFoundError(f"model '{name}' is not registered") from None

    def entries(self) -> Iterator[ModelEntry]:
        for name in self.names():
            yield from self._versions[name]

    def entry(self, ref: str | ModelRef | ModelEntry | None = None) -> ModelEntry:
        """The entry a reference names: ``None`` is the default model, no version the latest.

        An entry is returned as it is, so a caller that resolved one already (the request
        path) does not parse and look it up again.
        """
        if isinstance(ref, ModelEntry):
            return ref
        if ref is None:
            if self.default is None:
                raise ModelNotFoundError("no model named and no DEFAULT_MODEL configured")
            ref = self.default
        parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
        versions = self.versions(parsed.name)
        if parsed.version is None:
            return versions[-1]
        for entry in versions:
            if entry.manifest.version == parsed.version:
                return entry
        known = ", ".join(entry.manifest.version for entry in versions)
        raise ModelNotFoundError(
            f"model '{parsed.name}' has no version '{parsed.version}' (versions: {known})"
        )

    def is_default(self, name: str) -> bool:
        return self.default is not None and parse_model_ref(self.default).name == name

    def loaded_entries(self) -> list[ModelEntry]:
        """Loaded models, least recently used first."""
        with self._lru_lock:
            return list(self._lru.values())

    # --- serving -------------------------------------------------------------------

    async def acquire(self, ref: str | ModelEntry | None = None) -> ServedModel:
        """The runtime that serves ``ref``: loaded on first use, else its fallback.

        The runtime is pinned until ``release``: an unload meanwhile (LRU, admin) frees it
        only once no request uses it. Raises ``ModelNotFoundError`` for an unknown reference
        and ``ModelUnavailableError`` when neither the model nor a fallback can serve.
        """
        entry = self.entry(ref)
        runtime = await self._pinned_runtime(entry)
        if runtime is None:
            reason = f"{entry.ref} failed to load: {entry.error or 'unknown error'}"
            return await self._serve_fallback(entry, reason, set())
        return ServedModel(runtime, entry.manifest)

    def release(self, served: ServedModel) -> None:
        """The request is done with ``served``; an unloaded runtime is freed by its last user."""
        runtime = served.runtime
        with self._lru_lock:
            remaining = self._users.get(runtime, 1) - 1
            if remaining > 0:
                self._users[runtime] = remaining
                return
            self._users.pop(runtime, None)
            was_retired = runtime in self._retired
            self._retired.discard(runtime)
        if was_retired:
            runtime.unload()

    async def _pinned_runtime(self, entry: ModelEntry) -> ModelRuntime | None:
        """``entry``'s runtime, loaded if needed and pinned; None when it cannot load."""
        for _ in range(3):  # another load may evict it between our load and our pin
            if (runtime := self._pin_current(entry)) is not None:
                return runtime
            try:
                await asyncio.to_thread(self.load, entry)
            except ModelLoadError:
                return None
        return None

    def _pin_current(self, entry: ModelEntry) -> ModelRuntime | None:
        with self._lru_lock:
            runtime = entry.runtime
            if runtime is not None:
                self._users[runtime] = self._users.get(runtime, 0) + 1
                if entry.ref in self._lru:
                    self._lru.move_to_end(entry.ref)
            return runtime

    async def fallback_after_failure(
        self, served: ServedModel, reason: str, tried: set[str]
    ) -> ServedModel:
        """The next model that can serve after ``served`` failed on a request.

        ``tried`` collects every model that already failed this request, so a chain of
        failing fallbacks ends in ``ModelUnavailableError`` instead of going round.
        """
        failed = self.entry(served.manifest.ref)
        failed.error = reason
        tried.add(failed.ref)
        return await self._serve_fallback(self.entry(served.requested.ref), reason, tried)

    async def _serve_fallback(
        self, requested: ModelEntry, reason: str, excluded: set[str]
    ) -> ServedModel:
        for candidate in self._fallback_chain(requested):
            if candidate.ref in excluded or candidate.status is ModelStatus.FAILED:
                continue
            runtime = await self._pinned_runtime(candidate)
            if runtime is None:
                continue
            logger.warning("Serving %s in place of %s: %s", candidate.ref, requested.ref, reason)
            if self._listener is not None:
                self._listener.fallback_used(requested.manifest, candidate.manifest, reason)
            return ServedModel(runtime, requested.manifest, fallback_reason=reason)
        raise ModelUnavailableError(f"{reason}; no fallback model could serve the request")

    def _fallback_chain(self, requested: ModelEntry) -> Iterator[ModelEntry]:
        """Older versions of the model, newest first, then the task's fallback models."""
        yield from self._older_versions(requested)
        for ref in self.fallbacks:
            try:
                fallback = self.entry(ref)
            except RegistryError:
                continue
            if fallback.manifest.name == requested.manifest.name:
                continue
            if fallback.manifest.task != requested.manifest.task:
                continue
            yield fallback
            yield from self._older_versions(fallback)

    def _older_versions(self, entry: ModelEntry) -> Iterator[ModelEntry]:
        versions = self._versions[entry.manifest.name]
        yield from reversed(versions[: versions.index(entry)])

    # --- loading and unloading -----------------------------------------------------

    def load(self, entry: ModelEntry, *, retry_failed: bool = False) -> ModelRuntime:
        """Load ``entry`` once (blocking); a failed model is retried only when asked."""
        with entry.lock:
            if entry.runtime is not None:
                return entry.runtime
            if entry.status is ModelStatus.FAILED and not retry_failed:
                raise ModelLoadError(entry.error or "model failed to load")
            runtime = self._load_runtime(entry)
        self._remember_loaded(entry)
        return runtime

    def _load_runtime(self, entry: ModelEntry) -> ModelRuntime:
        started = time.perf_counter()
        try:
            runtime = self._runtime_factory(entry.manifest, entry.model_dir)
            if runtime.needs_artifact:
                # NOTE: checked before unpickling: an unverified pickle can run any code.
                verify_artifact(entry.manifest, entry.model_dir)
            runtime.load()
            runtime.warm_up()
        except Exception as error:
            message = str(error) if isinstance(error, ModelLoadError) else describe_error(error)
            logger.exception("Model %s failed to load", entry.ref)
            entry.status, entry.error = ModelStatus.FAILED, message
            if self._listener is not None:
                self._listener.model_failed(entry.manifest, message)
            raise ModelLoadError(message) from error
        entry.load_seconds = time.perf_counter() - started
        entry.runtime, entry.status, entry.error = runtime, ModelStatus.LOADED, None
        entry.loaded_at = datetime.now(UTC)
        logger.info("Loaded model %s in %.3f s", entry.ref, entry.load_seconds)
        if self._listener is not None:
            self._listener.model_loaded(entry.manifest, entry.load_seconds)
        return runtime

    def unload(self, entry: ModelEntry) -> bool:
        """Unload ``entry``; True if it was loaded. A failed model stays failed.

        A runtime that requests are still using is freed when the last of them releases it.
        """
        with entry.lock:
            runtime, entry.runtime = entry.runtime, None
            if runtime is None:
                return False
            entry.status, entry.loaded_at = ModelStatus.REGISTERED, None
        with self._lru_lock:
            self._lru.pop(entry.ref, None)
            in_use = runtime in self._users
            if in_use:
                self._retired.add(runtime)
        if in_use:
            logger.info("Unloaded model %s; freed when its requests end", entry.ref)
        else:
            runtime.unload()
            logger.info("Unloaded model %s", entry.ref)
        if self._listener is not None:
            self._listener.model_unloaded(entry.manifest)
        return True

    def unload_all(self) -> None:
        for entry in self.loaded_entries():
            self.unload(entry)

    def preload(self, refs: Sequence[str]) -> None:
        """Load ``refs`` now (at start); a failure is logged and the model shown as failed."""
        for ref in refs:
            try:
                self.load(self.entry(ref))
            except RegistryError:
                logger.exception("Could not preload model %s", ref)

    def rescan(self) -> None:
        """Unload everything and read the store's manifests again (models added or removed)."""
        if self.root is None:
            raise ModelLoadError("this registry was not built from a model store folder")
        self.unload_all()
        scan = scan_store(self.root)
        self._versions = self._index(scan.models)
        self.problems, self.scanned_at = list(scan.problems), datetime.now(UTC)
        logger.info("Rescanned %s: %d model versions", self.root, len(scan.models))

    # --- internals -----------------------------------------------------------------

    def _remember_loaded(self, entry: ModelEntry) -> None:
        with self._lru_lock:
            self._lru[entry.ref] = entry
            self._lru.move_to_end(entry.ref)
            evicted = self._over_capacity()
        for victim in evicted:
            logger.info("Unloading %s: MAX_LOADED_MODELS=%s reached", victim.ref, self.max_loaded)
            self.unload(victim)

    def _over_capacity(self) -> list[ModelEntry]:
        if self.max_loaded is None:
            return []
        surplus = len(self._lru) - self.max_loaded
        return list(self._lru.values())[: max(surplus, 0)]

    @staticmethod
    def _index(models: Sequence[StoredModel]) -> dict[str, list[ModelEntry]]:
        versions: dict[str, list[ModelEntry]] = {}
        for stored in models:
            versions.setdefault(stored.manifest.name, []).append(
                ModelEntry(stored.manifest, stored.model_dir)
            )
        for entries in versions.values():
            entries.sort(key=lambda entry: version_sort_key(entry.manifest.version))
        return versions

    def _check_configured_refs(self) -> None:
        for ref in [self.default, *self.fallbacks]:
            if ref is None:
                continue
            try:
                self.entry(ref)
            except RegistryError as error:
                logger.error("Configured model %r is not usable: %s", ref, error)
