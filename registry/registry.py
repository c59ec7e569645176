"""The lazy model registry: the catalogue, the loader and the fallback policy, together.

Start-up reads manifests only. A model's artifact is read, hash-checked and loaded the
first time a request needs it, once even under concurrent first requests. When a model
cannot be loaded or fails, its fallback serves: the model's previous good version, else
the fallback model of the same task. The default model, the fallbacks and the aliases
are a ``ServingState`` that the database holds and every worker applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from ml.manifest import ModelManifest
from ml.runtime import ModelRuntime
from registry.aliases import ServingState
from registry.catalogue import Catalogue, ModelEntry, ModelStatus
from registry.errors import (
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
    RegistryError,
)
from registry.events import RegistryListener, SilentListener
from registry.fallback import FallbackPolicy
from registry.loader import ModelLoader, RuntimeFactory
from registry.refs import ModelRef, parse_model_ref, version_sort_key
from registry.store import StoredModel, UnreadableManifest, scan_store

logger = logging.getLogger(__name__)

_MAX_REMEMBERED_REFS = 1024


class Serving:
    """The model serving one request: the one asked for, or after a failure a fallback.

    Use ``async with registry.serving(entry) as serving``: the runtime in use is pinned
    until the block ends, so that no unload frees it under the request.
    """

    __slots__ = ("_entry", "_registry", "_tried", "fallback_reason", "requested", "runtime")

    def __init__(self, registry: ModelRegistry, requested: ModelEntry) -> None:
        self._registry = registry
        self._tried: set[ModelEntry] = set()
        self.requested = requested
        self._entry = requested
        """The entry whose runtime serves now (``requested`` until a fallback)."""
        self.runtime: ModelRuntime | None = None
        self.fallback_reason: str | None = None
        """Why a fallback serves; None while the model asked for does."""

    @property
    def manifest(self) -> ModelManifest:
        return self._current().manifest

    @property
    def is_fallback(self) -> bool:
        return self.fallback_reason is not None

    async def __aenter__(self) -> Serving:
        self.runtime = await self._registry.loader.pin(self.requested)
        if self.runtime is None:
            error = self.requested.error or "unknown error"
            await self._serve_fallback(f"{self.requested.ref} failed to load: {error}")
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self.runtime is not None:
            self._registry.loader.unpin(self.runtime)
            self.runtime = None

    async def fall_back(self, reason: str) -> None:
        """The runtime in use failed on this request: serve it with the next candidate.

        Every model that failed the request is skipped afterwards, so a chain of failing
        fallbacks ends in ``ModelUnavailableError`` instead of going round.
        """
        failed = self._current()
        # The entry itself, not a look-up by reference: a rescan meanwhile may have replaced
        # or removed it in the catalogue.
        self._entry.error = reason
        self._tried.add(self._entry)
        self._registry.loader.unpin(failed)
        self.runtime = None
        await self._serve_fallback(reason)

    async def _serve_fallback(self, reason: str) -> None:
        for candidate in self._registry.fallback_policy.candidates(self.requested):
            if candidate in self._tried or candidate.status is ModelStatus.FAILED:
                continue
            runtime = await self._registry.loader.pin(candidate)
            if runtime is None:
                continue
            logger.warning(
                "Serving %s in place of %s: %s", candidate.ref, self.requested.ref, reason
            )
            self._registry.listener.fallback_used(
                self.requested.manifest, candidate.manifest, reason
            )
            self.runtime, self.fallback_reason, self._entry = runtime, reason, candidate
            return
        raise ModelUnavailableError(f"{reason}; no fallback model could serve the request")

    def _current(self) -> ModelRuntime:
        if self.runtime is None:
            raise RuntimeError("no model is serving: use Serving inside 'async with'")
        return self.runtime


class _View:
    """A serving state as requests see it: the state, its fallback policy, and the references
    resolved under it, so that a change of state leaves no stale resolution behind."""

    __slots__ = ("fallback_policy", "resolved", "state")

    def __init__(self, state: ServingState, fallback_policy: FallbackPolicy) -> None:
        self.state, self.fallback_policy = state, fallback_policy
        self.resolved: dict[str | None, ModelEntry] = {}


class ModelRegistry:
    """Registered models by name and version, loaded lazily, with default and fallbacks."""

    _view: _View
    default: str | None
    """The reference ``POST /predict`` serves (None: requests must name their model); the
    state's, kept as a plain attribute because every request that names no model reads it."""

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
        unreadable: Sequence[UnreadableManifest] = (),
        root: Path | None = None,
    ) -> None:
        self.root = root
        self.listener: RegistryListener = listener or SilentListener()
        self.loader = ModelLoader(runtime_factory, self.listener, max_loaded)
        self._set_catalogue(
            Catalogue(models), ServingState(default, tuple(fallbacks)), problems, unreadable
        )
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
            unreadable=scan.unreadable,
            root=root,
        )

    # --- lookups -------------------------------------------------------------------

    @property
    def state(self) -> ServingState:
        return self._view.state

    @property
    def fallbacks(self) -> list[str]:
        return list(self._view.state.fallbacks)

    @property
    def fallback_policy(self) -> FallbackPolicy:
        return self._view.fallback_policy

    @property
    def max_loaded(self) -> int | None:
        return self.loader.max_loaded

    def resolve(self, ref: str | None) -> ModelEntry:
        """The entry ``ref`` names (``name``, ``name@version``, ``name@alias``); None is the
        default model."""
        view = self._view  # one state for the whole look-up, even if another is applied
        entry = view.resolved.get(ref)
        if entry is not None:
            return entry
        if ref is None:
            entry = self._default_entry(view.state)
        else:
            entry = self._find(parse_model_ref(ref), ref, view.state)
        # Remembered for the next request, in a bounded table: references are client text.
        if len(view.resolved) < _MAX_REMEMBERED_REFS:
            view.resolved[ref] = entry
        return entry

    def default_problem(self) -> str | None:
        """Why a request that names no model cannot be served, or None; for readiness.

        A DEFAULT_MODEL that names no readable model is the service misconfigured: every
        such request would fail, so orchestrators must see it before sending traffic.
        """
        if self.default is None:
            return None  # requests must name their model: nothing is broken
        try:
            self.resolve(None)
        except ModelUnavailableError as error:
            return str(error)
        except RegistryError as error:  # not registered: a typo in DEFAULT_MODEL, say
            return f"the default model {self.default} cannot serve: {error}; fix DEFAULT_MODEL"
        return None

    def is_default(self, name: str) -> bool:
        return self.default is not None and parse_model_ref(self.default).name == name

    def serving(self, entry: ModelEntry) -> Serving:
        """``async with registry.serving(entry) as serving``: the runtime that serves."""
        return Serving(self, entry)

    def aliases_of(self, name: str) -> dict[str, str]:
        """``name``'s aliases and the version each names, by alias."""
        return dict(sorted(self._view.state.aliases_of(name).items()))

    def pinned(self, ref: ModelRef) -> ModelRef:
        """``ref`` with the version it names now: an alias, or a bare name, made a version
        when it is one (a bare name without a champion is left bare)."""
        return self._pinned(ref, self._view.state)[0]

    def serving_version(self, name: str) -> str:
        """The version ``name`` alone means now: its champion when set, else its latest."""
        pinned, _alias = self._pinned(ModelRef(name), self._view.state)
        return pinned.version or self.catalogue.versions(name)[-1].manifest.version

    # --- serving state -------------------------------------------------------------

    def apply_state(self, state: ServingState) -> bool:
        """Serve ``state`` from now on (as the database holds it); True when it changed."""
        current = self._view.state
        if state == current:
            return False
        self._set_view(state)
        if (state.default, state.fallbacks) != (current.default, current.fallbacks):
            logger.info(
                "Default model %s, fallback models %s",
                state.default,
                ", ".join(state.fallbacks) or "none",
            )
            self._check_configured_refs()
        return True

    # --- lifecycle -----------------------------------------------------------------

    def preload(self, refs: Sequence[str]) -> None:
        """Load ``refs`` now (at start); a failure is logged and the model shown as failed."""
        for ref in refs:
            try:
                self.loader.load(self.resolve(ref))
            except RegistryError:
                logger.exception("Could not preload model %s", ref)

    def rescan(self) -> None:
        """Unload everything and read the store's manifests again (models added or removed)."""
        if self.root is None:
            raise ModelLoadError("this registry was not built from a model store folder")
        self.loader.unload_all()
        scan = scan_store(self.root)
        self._set_catalogue(Catalogue(scan.models), self.state, scan.problems, scan.unreadable)
        logger.info("Rescanned %s: %d model versions", self.root, len(scan.models))

    def entries(self) -> Iterator[ModelEntry]:
        return self.catalogue.entries()

    def _set_catalogue(
        self,
        catalogue: Catalogue,
        state: ServingState,
        problems: Sequence[str],
        unreadable: Sequence[UnreadableManifest],
    ) -> None:
        self.catalogue = catalogue
        self.problems, self.scanned_at = list(problems), datetime.now(UTC)
        self.unreadable = sorted(
            unreadable, key=lambda item: (item.name, version_sort_key(item.version))
        )
        """The model versions whose manifest could not be read, oldest first per model."""
        self._set_view(state)  # last: it resolves in the new catalogue

    def _set_view(self, state: ServingState) -> None:
        policy = FallbackPolicy(
            self.catalogue, state.fallbacks, lambda ref: self._pinned(ref, state)[0]
        )
        self._view, self.default = _View(state, policy), state.default

    def _pinned(self, ref: ModelRef, state: ServingState) -> tuple[ModelRef, str | None]:
        try:
            versions = [entry.manifest.version for entry in self.catalogue.versions(ref.name)]
        except ModelNotFoundError:
            return ref, None
        return state.pinned(ref, versions)

    def _default_entry(self, state: ServingState) -> ModelEntry:
        if state.default is None:
            raise ModelNotFoundError("no model named and no DEFAULT_MODEL configured")
        label = f"the default model {state.default}"
        advice = "name a model or fix its manifest"
        return self._find(parse_model_ref(state.default), label, state, advice)

    def _find(
        self, ref: ModelRef, label: str, state: ServingState, advice: str | None = None
    ) -> ModelEntry:
        """The entry ``ref`` names; one whose manifest is unreadable is unavailable, not unknown."""
        pinned, alias = self._pinned(ref, state)
        try:
            return self.catalogue.find(pinned)
        except ModelNotFoundError:
            unreadable = self._unreadable_for(pinned)
            if unreadable is not None:
                if advice is None:
                    advice = "fix its manifest" + self._serving_versions(ref)
                raise ModelUnavailableError(
                    f"{label} cannot be read: {unreadable.error}; {advice}"
                ) from None
            if alias is not None:
                raise ModelUnavailableError(
                    f"{label}: alias '{alias}' of {ref.name} names version '{pinned.version}', "
                    f"which the model store does not hold{self._serving_versions(ref)}; "
                    "point the alias at another version"
                ) from None
            aliases = state.aliases_of(ref.name)
            if ref.version is not None and aliases:
                versions = ", ".join(e.manifest.version for e in self.catalogue.versions(ref.name))
                raise ModelNotFoundError(
                    f"model '{ref.name}' has no version or alias '{ref.version}' "
                    f"(versions: {versions}; aliases: {', '.join(sorted(aliases))})"
                ) from None
            raise

    def _unreadable_for(self, ref: ModelRef) -> UnreadableManifest | None:
        """The unreadable manifest ``ref`` names: without a version, the model's newest."""
        found = [
            item
            for item in self.unreadable
            if item.name == ref.name and ref.version in (None, item.version)
        ]
        return found[-1] if found else None

    def _serving_versions(self, ref: ModelRef) -> str:
        try:
            versions = self.catalogue.versions(ref.name)
        except ModelNotFoundError:
            return ""
        return f" (versions that can serve: {', '.join(e.manifest.version for e in versions)})"

    def _check_configured_refs(self) -> None:
        for ref in [self.default, *self.fallbacks]:
            if ref is None:
                continue
            try:
                self.resolve(ref)
            except RegistryError as error:
                logger.error("Configured model %r is not usable: %s", ref, error)
