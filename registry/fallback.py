"""Fallback resolution: which models may serve a request in place of the one asked for."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from registry.catalogue import Catalogue, ModelEntry
from registry.errors import RegistryError
from registry.refs import parse_model_ref


class FallbackPolicy:
    """The model's older versions, newest first, then the fallback models of its task."""

    def __init__(self, catalogue: Catalogue, fallbacks: Sequence[str]) -> None:
        self._catalogue = catalogue
        self.fallbacks = list(fallbacks)

    def candidates(self, requested: ModelEntry) -> Iterator[ModelEntry]:
        """Every model that may serve for ``requested``, in the order to try them."""
        yield from self._catalogue.older_versions(requested)
        for ref in self.fallbacks:
            try:
                fallback = self._catalogue.find(parse_model_ref(ref))
            except RegistryError:
                continue
            if fallback.manifest.name == requested.manifest.name:
                continue
            if fallback.manifest.task != requested.manifest.task:
                continue
            yield fallback
            yield from self._catalogue.older_versions(fallback)
