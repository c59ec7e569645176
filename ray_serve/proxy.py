"""A middleware for Serve's HTTP proxy: a request whose replica died answers 503.

When a replica's process dies with requests in flight, the proxy gets ``RayActorError`` and
answers nothing (uvicorn then sends a bare 500), although nothing is wrong with the request
and another replica can take it. This middleware answers 503 with ``Retry-After`` instead,
as the app itself does when it cannot serve. Serve loads it in each proxy process from
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=ray_serve.proxy:middlewares``: the Ray processes
need ``PROXY_ENVIRONMENT`` (a local cluster of ``python -m ray_serve`` gets it from there).
"""

from __future__ import annotations

import json

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROXY_ENVIRONMENT = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "ray_serve.proxy:middlewares",
    # One proxy (on the head) in front of replicas on every node: preferring the replicas of
    # its own node would leave the others idle until the local ones are loaded.
    "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
}

_RETRY_AFTER_SECONDS = "1"


class UnansweredIs503:
    """Answer 503 for an HTTP request that the app below left without a response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, receive, send_and_note)
        if not started:
            await _send_unavailable(send)


async def _send_unavailable(send: Send) -> None:
    body = json.dumps(
        {"error": "the replica serving this request stopped before it answered; retry"}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", _RETRY_AFTER_SECONDS.encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def middlewares() -> list[Middleware]:
    """The callback Serve's proxy calls for its middlewares."""
    return [Middleware(UnansweredIs503)]
