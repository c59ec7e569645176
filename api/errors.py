"""HTTP errors and the handlers that turn every failure into a JSON body with a clear message.

Body: ``{"error": "<message>", "detail": [{"field": ..., "problem": ...}], "request_id": ...}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from db.traces import TraceWriteError
from ml.errors import InvalidInputError
from registry.errors import InvalidModelRefError, ModelNotFoundError, ModelUnavailableError
from serving.errors import (
    BodyTimeout,
    InvalidRequest,
    ModelNotFound,
    NoModelAvailable,
    PayloadTooLarge,
    ServingError,
    UnsupportedMedia,
    as_serving_error,
    summarise,
)

logger = logging.getLogger(__name__)

V2_PREFIX = "/v2"
RETRY_AFTER_SECONDS = "1"
"""What a 503 tells the client to wait before retrying (the outage is usually brief)."""


class ApiError(Exception):
    """An error with its HTTP status; ``detail`` lists the fields at fault."""

    status_code = 500

    def __init__(  # noqa: B042 (raised and handled in-process, never pickled)
        self,
        message: str,
        *,
        detail: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.detail, self.headers = message, detail, headers


class NotFoundError(ApiError):
    status_code = 404


class UnauthorizedError(ApiError):
    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(ApiError):
    status_code = 403


class ConflictError(ApiError):
    status_code = 409


class InvalidRequestError(ApiError):
    status_code = 422

    @classmethod
    def from_problems(cls, message: str, problems: dict[str, str]) -> InvalidRequestError:
        detail = [{"field": field, "problem": problem} for field, problem in problems.items()]
        return cls(f"{message}: {summarise(problems)}", detail=detail)


class TooManyRequestsError(ApiError):
    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ServiceUnavailableError(ApiError):
    status_code = 503


# The database errors that mean "unreachable or overloaded" (refused or dropped connection,
# pool exhausted, SQLite locked), not a bug: a 503 the client may retry.
DATABASE_OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)
_OUTAGE_LOG_INTERVAL_SECONDS = 10.0


class RateLimitedLog:
    """One warning line every ``interval`` seconds at most, saying how many were left out.

    During an outage every request fails alike: a traceback each would drown the log.
    """

    def __init__(
        self, log: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log, self._interval, self._clock = log, interval, clock
        self._last: float | None = None
        self._left_out = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._left_out += 1
            return
        self._log.warning(message + " (%d like it left out)", *args, self._left_out)
        self._last, self._left_out = now, 0


_outage_log = RateLimitedLog(logger, _OUTAGE_LOG_INTERVAL_SECONDS)


def database_outage(error: Exception) -> ServiceUnavailableError:
    """The 503 answering a database failure; logged as one short line, rate-limited."""
    cause = getattr(error, "orig", None) or error
    first_line = (str(cause).splitlines() or [""])[0]
    _outage_log.warning("Database unavailable: %s: %s", type(cause).__name__, first_line)
    return ServiceUnavailableError("the database is unavailable: retry shortly")


# The native routes' status for each data-plane error (most specific first).
NATIVE_STATUS: tuple[tuple[type[ServingError], int], ...] = (
    (PayloadTooLarge, 413),
    (BodyTimeout, 408),
    (UnsupportedMedia, 415),
    (InvalidRequest, 422),
    (ModelNotFound, 404),
    (NoModelAvailable, 503),
    (ServingError, 500),
)


def native_status(error: ServingError) -> int:
    return next(status for error_type, status in NATIVE_STATUS if isinstance(error, error_type))


def as_api_error(error: Exception) -> ApiError:
    """The HTTP form of an error: a domain error gets its status from ``NATIVE_STATUS``."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, StarletteHTTPException):
        return _from_http_exception(error)
    serving_error = as_serving_error(error)
    detail = [
        {"field": field, "problem": problem} for field, problem in serving_error.problems.items()
    ]
    api_error = ApiError(serving_error.message, detail=detail or None)
    api_error.status_code = native_status(serving_error)
    return api_error


def _from_http_exception(error: StarletteHTTPException) -> ApiError:
    # Raised by Starlette itself, e.g. on a malformed multipart body or a body too large.
    api_error = ApiError(str(error.detail), headers=dict(error.headers or {}))
    api_error.status_code = error.status_code
    return api_error


def error_body(error: ApiError, request_id: str | None) -> bytes:
    """``{"error": ..., "detail": [...], "request_id": ...}``, the native error body."""
    body: dict[str, Any] = {"error": error.message}
    if error.detail:
        body["detail"] = error.detail
    body["request_id"] = request_id
    return orjson.dumps(body)


# Under /v2 every refused request is a 400, whatever its native status says (OIP).
_V2_BAD_REQUEST = frozenset({408, 413, 415, 422})


def rendered_error(
    error: ApiError, *, path: str, request_id: str | None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers of ``error`` in its route's protocol, for every error answer.

    Native: ``{"error", "detail", "request_id"}`` with the error's status. Under ``/v2``, the
    Open Inference Protocol's ``{"error"}`` with 400, 404 or 503. A 503 says when to retry.
    """
    headers = dict(error.headers or {})
    if error.status_code == 503:
        headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)
    if path.startswith(V2_PREFIX):
        status = 400 if error.status_code in _V2_BAD_REQUEST else error.status_code
        return status, orjson.dumps({"error": error.message}), headers
    return error.status_code, error_body(error, request_id), headers


def error_response(request: Request, error: ApiError) -> Response:
    status, body, headers = rendered_error(
        error, path=request.url.path, request_id=getattr(request.state, "request_id", None)
    )
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _handle_domain_error(request: Request, error: Exception) -> Response:
    return error_response(request, as_api_error(error))


async def _handle_database_outage(request: Request, error: Exception) -> Response:
    return error_response(request, database_outage(error))


async def _handle_validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = {
        ".".join(str(part) for part in issue["loc"]): issue["msg"] for issue in error.errors()
    }
    return error_response(request, InvalidRequestError.from_problems("invalid request", problems))


async def _handle_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    api_error = _from_http_exception(error)
    allowed = allowed_methods(request) if error.status_code == 405 else None
    if allowed:
        api_error.headers = {**(api_error.headers or {}), "Allow": allowed}
    return error_response(request, api_error)


def allowed_methods(request: Request) -> str:
    """The ``Allow`` of a 405: the documented methods of the path's most specific template.

    Starlette names those of the first route whose path matches, whatever its method: GET
    alone for ``/users`` (GET and POST), and GET for ``/models/reload`` (POST), matched first
    by ``/models/{name}`` (GET). Empty when no documented path matches.
    """
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    matching: list[tuple[int, list[str]]] = []
    for template, path_item in request.app.openapi().get("paths", {}).items():
        regex, _, convertors = compile_path(template)
        if regex.match(path):
            methods = [method.upper() for method in path_item if method in _HTTP_METHODS]
            matching.append((len(convertors), methods))
    fewest = min((parameters for parameters, _ in matching), default=0)
    allowed = {
        method for parameters, methods in matching if parameters == fewest for method in methods
    }
    return ", ".join(sorted(allowed))


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def register_error_handlers(app: FastAPI) -> None:
    for error_type in (
        ApiError,
        InvalidInputError,
        ModelNotFoundError,
        InvalidModelRefError,
        ModelUnavailableError,
        TraceWriteError,
        ServingError,
    ):
        app.add_exception_handler(error_type, _handle_domain_error)
    for outage_type in DATABASE_OUTAGE_ERRORS:
        app.add_exception_handler(outage_type, _handle_database_outage)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
