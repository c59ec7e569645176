"""The predict routes as plain ASGI endpoints, dispatched ahead of FastAPI's router.

A prediction must cost what the model costs. FastAPI's routing, dependency solving and
middleware stack cost more than the attrition model itself, so the routes that predict
(native ``/predict`` and OIP ``/v2/.../infer``) are matched here, run under the same
request-id, body-limit and metrics middleware as every other route, and only decode, call
the data plane and encode. Everything else goes to FastAPI. Their OpenAPI entries are
written by ``api.openapi``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api.asgi import send_bytes
from api.errors import ApiError, rendered_error
from api.metrics import HttpMetricsMiddleware
from api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware

Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A POST route served as plain ASGI; ``path`` is its template (the metrics label)."""

    path: str
    endpoint: Endpoint
    pattern: re.Pattern[str]

    @classmethod
    def post(cls, path: str, endpoint: Endpoint) -> FastRoute:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
        return cls(path, endpoint, re.compile(regex))


class ServingApp(FastAPI):
    """FastAPI, with the predict routes dispatched before its own router and middleware."""

    def __init__(self, *, max_body_bytes: int, body_read_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_routes: list[FastRoute] = []
        self._fast_stack: ASGIApp = HttpMetricsMiddleware(
            RequestIdMiddleware(
                BodySizeLimitMiddleware(_call_endpoint, max_body_bytes, body_read_timeout)
            )
        )

    def add_fast_route(self, route: FastRoute) -> None:
        self.fast_routes.append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for route in self.fast_routes:
                match = route.pattern.fullmatch(path)  # not match: '$' allows a final newline
                if match is not None:
                    scope["app"], scope["route"] = self, route
                    scope["path_params"] = match.groupdict()
                    await self._fast_stack(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


async def _call_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    route: FastRoute = scope["route"]
    if scope["method"] != "POST":
        message = (
            f"{scope['method']} is not allowed on {route.path}: POST the input "
            "(see /docs for its body)"
        )
        error = ApiError(message, headers={"Allow": "POST"})
        error.status_code = 405
        await send_error(scope, send, error)
        return
    await route.endpoint(scope, receive, send)


async def send_error(scope: Scope, send: Send, error: ApiError) -> None:
    """Answer ``error`` in the shape of the route's protocol (native, or OIP under /v2)."""
    status, body, headers = rendered_error(
        error, path=scope["path"], request_id=scope["state"]["request_id"]
    )
    await send_bytes(send, status, body, headers=headers)
