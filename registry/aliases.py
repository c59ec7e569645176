"""Aliases (``champion``, ``challenger``, …) and what every worker serves by default.

``name`` means ``name@champion`` when that alias is set, else the latest version;
``name@alias`` means the version the alias points at. The state lives in the database;
each worker holds a ``ServingState`` snapshot of it, so a request resolves from memory.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from registry.errors import InvalidAliasError
from registry.refs import ModelRef

CHAMPION = "champion"
"""The alias that a bare model name means."""
ALIAS_MAX_CHARS = 64
_ALIAS_PATTERN = re.compile(rf"^[a-z][a-z0-9_-]{{0,{ALIAS_MAX_CHARS - 1}}}$")


def check_alias_name(alias: str, versions: Collection[str]) -> None:
    """Raise ``InvalidAliasError`` unless ``alias`` can name an alias of a model with ``versions``.

    An alias shares the ``@`` slot with versions, so it must never read as one: not as a
    version the model has, nor as any version number (``2``, ``v2``, ``1.0rc1``) it may get.
    """
    if not _ALIAS_PATTERN.match(alias):
        raise InvalidAliasError(
            f"invalid alias {alias!r}: a lowercase letter, then lowercase letters, digits, "
            f"'-' or '_', {ALIAS_MAX_CHARS} characters at most"
        )
    if alias in versions or _reads_as_version(alias):
        raise InvalidAliasError(
            f"invalid alias {alias!r}: it reads as a version, and 'name@{alias}' must name "
            "one thing; choose a word such as 'champion' or 'challenger'"
        )


def _reads_as_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ServingState:
    """What every worker serves: the default model, the fallbacks and each model's aliases."""

    default: str | None = None
    """The reference ``POST /predict`` serves; None when requests must name their model."""
    fallbacks: tuple[str, ...] = ()
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Model name → alias → version."""

    def aliases_of(self, name: str) -> Mapping[str, str]:
        return self.aliases.get(name, {})

    def pinned(self, ref: ModelRef, versions: Collection[str]) -> tuple[ModelRef, str | None]:
        """``ref`` with its alias replaced by the version it names, and that alias (or None).

        A bare name is its champion when set; a version of that name wins over an alias.
        """
        aliases = self.aliases.get(ref.name)
        if not aliases or ref.version in versions:
            return ref, None
        alias = CHAMPION if ref.version is None else ref.version
        version = aliases.get(alias)
        if version is None:
            return ref, None
        return ModelRef(ref.name, version), alias
