"""HTTP errors and the handlers that turn every failure into a JSON body with a clear message.

Body: ``{"error": "<message>", "detail": [{"field": ..., "problem": ...}], "request_id": ...}``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from db.traces import TraceWriteError
from ml.errors import InvalidInputError, UnsupportedFormatError
from registry.errors import InvalidModelRefError, ModelNotFoundError, ModelUnavailableError

logger = logging.getLogger(__name__)


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


class PayloadTooLargeError(ApiError):
    status_code = 413


class UnsupportedMediaTypeError(ApiError):
    status_code = 415


class InvalidRequestError(ApiError):
    status_code = 422

    @classmethod
    def from_problems(cls, message: str, problems: dict[str, str]) -> InvalidRequestError:
        detail = [{"field": field, "problem": problem} for field, problem in problems.items()]
        return cls(f"{message}: {_summarise(problems)}", detail=detail)


class ServiceUnavailableError(ApiError):
    status_code = 503


def as_api_error(error: Exception) -> ApiError:
    """The HTTP form of a domain error (registry, runtime, trace writer)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, UnsupportedFormatError):
        return UnsupportedMediaTypeError(f"unsupported media: {_summarise(error.problems)}")
    if isinstance(error, InvalidInputError):
        return InvalidRequestError.from_problems("invalid input", error.problems)
    if isinstance(error, ModelNotFoundError):
        return NotFoundError(str(error))
    if isinstance(error, InvalidModelRefError):
        return InvalidRequestError(str(error), detail=[{"field": "model", "problem": str(error)}])
    if isinstance(error, ModelUnavailableError):
        return ServiceUnavailableError(str(error))
    if isinstance(error, TraceWriteError):
        return ServiceUnavailableError(
            "the prediction could not be recorded in the trace database, so it is not "
            "returned; retry later"
        )
    if isinstance(error, StarletteHTTPException):
        return _from_http_exception(error)
    logger.error("Unexpected error", exc_info=error)
    return ApiError("internal error")


def _from_http_exception(error: StarletteHTTPException) -> ApiError:
    # Raised by Starlette itself, e.g. on a malformed multipart body or a body too large.
    api_error = ApiError(str(error.detail), headers=dict(error.headers or {}))
    api_error.status_code = error.status_code
    return api_error


def error_response(request: Request, error: ApiError) -> Response:
    body: dict[str, Any] = {"error": error.message}
    if error.detail:
        body["detail"] = error.detail
    body["request_id"] = getattr(request.state, "request_id", None)
    return Response(
        orjson.dumps(body),
        status_code=error.status_code,
        media_type="application/json",
        headers=error.headers,
    )


async def _handle_domain_error(request: Request, error: Exception) -> Response:
    return error_response(request, as_api_error(error))


async def _handle_validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = {
        ".".join(str(part) for part in issue["loc"]): issue["msg"] for issue in error.errors()
    }
    return error_response(request, InvalidRequestError.from_problems("invalid request", problems))


async def _handle_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    return error_response(request, _from_http_exception(error))


def register_error_handlers(app: FastAPI) -> None:
    for error_type in (
        ApiError,
        InvalidInputError,
        ModelNotFoundError,
        InvalidModelRefError,
        ModelUnavailableError,
        TraceWriteError,
    ):
        app.add_exception_handler(error_type, _handle_domain_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)


def _summarise(problems: dict[str, str], shown: int = 3) -> str:
    parts = [f"{field}: {problem}" for field, problem in list(problems.items())[:shown]]
    hidden = len(problems) - shown
    return "; ".join(parts) + (f" (and {hidden} more)" if hidden > 0 else "")
