"""Errors of the registry, free of any HTTP notion (the API maps them to statuses)."""


class RegistryError(Exception):
    """Base class of the registry's errors."""


class InvalidModelRefError(RegistryError):
    """A model reference is not ``name``, ``name@version`` or ``name@alias``."""


class InvalidAliasError(RegistryError):
    """An alias name is not one (bad characters, or it reads as a version)."""


class ModelNotFoundError(RegistryError):
    """No registered model (or version) has this name."""


class ModelLoadError(RegistryError):
    """A model could not be loaded: bad artifact, hash mismatch, runtime failure."""


class ArtifactHashMismatchError(ModelLoadError):
    """The artifact on disk is not the one its manifest describes; it is never unpickled."""


class ManifestDigestError(ModelLoadError):
    """The manifest has no ``manifest_sha256``, or its content no longer matches it."""


class ModelUnavailableError(RegistryError):
    """The model asked for failed and no fallback could serve instead."""
