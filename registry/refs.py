"""Model references: ``name``, ``name@version`` or ``name@alias``.

A version and an alias share the ``@`` slot; the registry tells them apart (a version of
that name first, then an alias), and ``registry.aliases`` keeps alias names from reading
as versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from registry.errors import InvalidModelRefError

_REF_PATTERN = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9_-]*)(?:@(?P<version>[0-9A-Za-z][0-9A-Za-z._-]*))?$"
)


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: str | None = None
    """What follows ``@``: a version, or an alias that the registry turns into one."""

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"

    def matches(self, name: str, version: str) -> bool:
        """Whether the model version ``name``/``version`` is one this reference names."""
        return self.name == name and self.version in (None, version)


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``name``, ``name@version`` or ``name@alias``; ``InvalidModelRefError`` otherwise."""
    match = _REF_PATTERN.match(text.strip())
    if match is None:
        raise InvalidModelRefError(
            f"invalid model reference {text!r}: expected 'name', 'name@version' or "
            "'name@alias' (lowercase letters, digits, '-' and '_')"
        )
    return ModelRef(match["name"], match["version"])


def version_sort_key(version: str) -> tuple[int, Version | str]:
    """Order versions newest last: PEP 440 versions by value, others after them by text."""
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)
