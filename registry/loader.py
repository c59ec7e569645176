"""Loading and unloading runtimes: once per model, bounded by an LRU, pinned while in use."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ml.errors import describe_error
from ml.manifest import ModelManifest
from ml.runtime import ModelRuntime
from registry.catalogue import ModelEntry, ModelStatus
from registry.errors import ModelLoadError
from registry.events import RegistryListener
from registry.hashing import verify_artifact_files, verify_manifest

logger = logging.getLogger(__name__)

RuntimeFactory = Callable[[ModelManifest, Path], ModelRuntime]
_PIN_ATTEMPTS = 3


class ModelLoader:
    """Loads runtimes on demand, unloads the least recently used past ``max_loaded``.

    A runtime that requests use is pinned: an unload meanwhile (LRU or admin) frees it only
    when the last of them unpins it.
    """

    def __init__(
        self, runtime_factory: RuntimeFactory, listener: RegistryListener, max_loaded: int | None
    ) -> None:
        self.max_loaded = max_loaded if max_loaded and max_loaded > 0 else None
        self._runtime_factory = runtime_factory
        self._listener = listener
        self._lru: OrderedDict[str, ModelEntry] = OrderedDict()
        # Guards the LRU and the pins: which runtimes requests are using right now, and
        # which of those were unloaded meanwhile and must be freed when the last one ends.
        self._lock = threading.Lock()
        self._users: dict[ModelRuntime, int] = {}
        self._retired: set[ModelRuntime] = set()

    def loaded_entries(self) -> list[ModelEntry]:
        """Loaded models, least recently used first."""
        with self._lock:
            return list(self._lru.values())

    # --- pins ----------------------------------------------------------------------

    async def pin(self, entry: ModelEntry) -> ModelRuntime | None:
        """``entry``'s runtime, loaded if needed and pinned; None when it cannot load."""
        for _ in range(_PIN_ATTEMPTS):  # another load may evict it between our load and pin
            if (runtime := self._pin_loaded(entry)) is not None:
                return runtime
            try:
                await asyncio.to_thread(self.load, entry)
            except ModelLoadError:
                return None
        return None

    def unpin(self, runtime: ModelRuntime) -> None:
        """A request is done with ``runtime``; an unloaded one is freed by its last user."""
        with self._lock:
            remaining = self._users.get(runtime, 1) - 1
            if remaining > 0:
                self._users[runtime] = remaining
                return
            self._users.pop(runtime, None)
            was_retired = runtime in self._retired
            self._retired.discard(runtime)
        if was_retired:
            runtime.unload()

    def _pin_loaded(self, entry: ModelEntry) -> ModelRuntime | None:
        with self._lock:
            runtime = entry.runtime
            if runtime is not None:
                self._users[runtime] = self._users.get(runtime, 0) + 1
                if entry.ref in self._lru:
                    self._lru.move_to_end(entry.ref)
            return runtime

    # --- load and unload -----------------------------------------------------------

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

    def unload(self, entry: ModelEntry) -> bool:
        """Unload ``entry``; True if it was loaded. A failed model stays failed."""
        with entry.lock:
            runtime, entry.runtime = entry.runtime, None
            if runtime is None:
                return False
            entry.status, entry.loaded_at = ModelStatus.REGISTERED, None
        with self._lock:
            self._lru.pop(entry.ref, None)
            in_use = runtime in self._users
            if in_use:
                self._retired.add(runtime)
        if in_use:
            logger.info("Unloaded model %s; freed when its requests end", entry.ref)
        else:
            runtime.unload()
            logger.info("Unloaded model %s", entry.ref)
        self._listener.model_unloaded(entry.manifest)
        return True

    def unload_all(self) -> None:
        for entry in self.loaded_entries():
            self.unload(entry)

    def _load_runtime(self, entry: ModelEntry) -> ModelRuntime:
        started = time.perf_counter()
        logger.info("Loading model %s (%s)", entry.ref, entry.manifest.framework)
        try:
            # Every runtime, the mocks of ENV=test included, and before any is built from it:
            # a changed manifest is caught in the tests too.
            verify_manifest(entry.manifest)
            runtime = self._runtime_factory(entry.manifest, entry.model_dir)
            if runtime.needs_artifact:
                # NOTE: checked before unpickling: an unverified pickle can run any code.
                # The manifest was verified just above; only the files are left.
                verify_artifact_files(entry.manifest, entry.model_dir)
            runtime.load()
            runtime.warm_up()
        except Exception as error:
            message = str(error) if isinstance(error, ModelLoadError) else describe_error(error)
            logger.exception("Model %s failed to load", entry.ref)
            entry.status, entry.error = ModelStatus.FAILED, message
            self._listener.model_failed(entry.manifest, message)
            raise ModelLoadError(message) from error
        entry.load_seconds = time.perf_counter() - started
        entry.runtime, entry.status, entry.error = runtime, ModelStatus.LOADED, None
        entry.loaded_at = datetime.now(UTC)
        logger.info("Loaded model %s in %.3f s", entry.ref, entry.load_seconds)
        self._listener.model_loaded(entry.manifest, entry.load_seconds)
        return runtime

    def _remember_loaded(self, entry: ModelEntry) -> None:
        with self._lock:
            self._lru[entry.ref] = entry
            self._lru.move_to_end(entry.ref)
            surplus = len(self._lru) - self.max_loaded if self.max_loaded else 0
            evicted = list(self._lru.values())[: max(surplus, 0)]
        for victim in evicted:
            logger.info("Unloading %s: MAX_LOADED_MODELS=%s reached", victim.ref, self.max_loaded)
            self.unload(victim)
