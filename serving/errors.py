"""Errors of the predict path. Each carries the outcome its trace row records.

The data plane raises only these; each transport maps them to its own statuses (404, 413,
415, 422 and 503 on the native routes; 400, 404 and 503 under ``/v2``). Errors of the layers
below (runtimes, registry, trace writer) are translated once, in ``as_serving_error``.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from db.tables import Outcome
from db.traces import TraceWriteError
from ml.errors import InvalidInputError, UnsupportedFormatError
from registry.errors import InvalidModelRefError, ModelNotFoundError, ModelUnavailableError

logger = logging.getLogger(__name__)


class ServingError(Exception):
    """A request the data plane could not answer with a prediction."""

    outcome: ClassVar[Outcome] = Outcome.ERROR

    def __init__(  # noqa: B042 (raised and handled in-process, never pickled)
        self, message: str, problems: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or {}
        """Each offending field (``Age``, ``instances[2].Age``, ``file``) and what was wrong."""


class InvalidRequest(ServingError):
    """The input does not fit the model: malformed, wrong types, out of range, missing."""

    outcome = Outcome.INVALID_INPUT

    @classmethod
    def from_problems(cls, summary: str, problems: dict[str, str]) -> InvalidRequest:
        return cls(f"{summary}: {summarise(problems)}", problems)


class UnsupportedMedia(InvalidRequest):
    """The body is not a kind of input this model reads (JSON for an audio model...)."""


class PayloadTooLarge(InvalidRequest):
    """The body, the batch or the clip exceeds a configured limit."""


class BodyTimeout(InvalidRequest):
    """The request body stopped arriving before it was complete."""


class ModelNotFound(ServingError):
    """No registered model (or version) has this name."""

    outcome = Outcome.NOT_FOUND


class NoModelAvailable(ServingError):
    """Neither the model asked for nor a fallback can serve now."""

    outcome = Outcome.UNAVAILABLE


class NotRecorded(NoModelAvailable):
    """The prediction was made but its trace could not be committed: it is not answered."""


def as_serving_error(error: Exception) -> ServingError:
    """The one table from the lower layers' errors to the data plane's."""
    if isinstance(error, ServingError):
        return error
    if isinstance(error, UnsupportedFormatError):
        return UnsupportedMedia.from_problems("unsupported media", error.problems)
    if isinstance(error, InvalidInputError):
        return InvalidRequest.from_problems("invalid input", error.problems)
    if isinstance(error, InvalidModelRefError):
        return InvalidRequest(str(error), {"model": str(error)})
    if isinstance(error, ModelNotFoundError):
        return ModelNotFound(str(error))
    if isinstance(error, ModelUnavailableError):
        return NoModelAvailable(str(error))
    if isinstance(error, TraceWriteError):
        return NotRecorded(
            "the prediction could not be recorded in the trace database, so it is not "
            "returned; retry later"
        )
    logger.error("Unexpected error on the predict path", exc_info=error)
    return ServingError("internal error")


def summarise(problems: dict[str, str], shown: int = 3) -> str:
    """``field: problem; ...`` for the first few problems, and how many more there are."""
    parts = [f"{field}: {problem}" for field, problem in list(problems.items())[:shown]]
    hidden = len(problems) - shown
    return "; ".join(parts) + (f" (and {hidden} more)" if hidden > 0 else "")
