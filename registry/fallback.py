"""Fallback resolution: which models may serve a request in place of the one asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from registry.catalogue import Catalogue, ModelEntry
from registry.errors import InvalidModelRefError, RegistryError
from registry.refs import ModelRef, parse_model_ref


class FallbackPolicy:
    """The model's older versions, newest first, then the fallback models of its task."""

    def __init__(
        self,
        catalogue: Catalogue,
        fallbacks: Sequence[str],
        pin: Callable[[ModelRef], ModelRef] = lambda ref: ref,
    ) -> None:
        self._catalogue = catalogue
        self.fallbacks = list(fallbacks)
        self._pin = pin
        """The version a reference names now (an alias, or a bare name's champion)."""
        # Parsed once, here; a reference that is not one can serve nothing and is left out.
        self._refs = [ref for ref in map(_parsed, self.fallbacks) if ref is not None]

    def candidates(self, requested: ModelEntry) -> Iterator[ModelEntry]:
        """Every model that may serve for ``requested``, in the order to try them."""
        yield from self._catalogue.older_versions(requested)
        for ref in self._refs:
            try:
                fallback = self._catalogue.find(self._pin(ref))
            except RegistryError:
                continue
            if fallback.manifest.name == requested.manifest.name:
                continue
            if fallback.manifest.task != requested.manifest.task:
                continue
            yield fallback
            yield from self._catalogue.older_versions(fallback)


def _parsed(text: str) -> ModelRef | None:
    try:
        return parse_model_ref(text)
    except InvalidModelRefError:
        return None
