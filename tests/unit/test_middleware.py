"""The pure ASGI middleware: request ids on every response, even a crash; body size limit."""

from __future__ import annotations

import asyncio
import time

from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware


async def crash(_request: Request) -> PlainTextResponse:
    raise RuntimeError("bug")


async def echo_length(request: Request) -> PlainTextResponse:
    try:
        return PlainTextResponse(str(len(await request.body())))
    except HTTPException as error:
        return PlainTextResponse(error.detail, status_code=error.status_code)


def app() -> Starlette:
    application = Starlette(
        routes=[Route("/crash", crash), Route("/echo", echo_length, methods=["POST"])]
    )
    application.add_middleware(BodySizeLimitMiddleware, max_bytes=10)
    application.add_middleware(RequestIdMiddleware)
    return application


def test_an_unhandled_error_is_a_json_500_with_the_request_id() -> None:
    client = TestClient(app(), raise_server_exceptions=False)
    response = client.get("/crash", headers={"X-Request-ID": "trace-me-1"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "request_id": "trace-me-1"}
    assert response.headers["x-request-id"] == "trace-me-1"


def test_bodies_over_the_limit_are_refused_by_declared_or_actual_size() -> None:
    client = TestClient(app())
    assert client.post("/echo", content=b"0123456789").text == "10"
    declared = client.post("/echo", content=b"01234567890")
    assert declared.status_code == 413 and "limit of 10 bytes" in declared.text

    def chunks() -> object:
        yield b"012345"
        yield b"678901"

    streamed = client.post("/echo", content=chunks())  # no Content-Length: counted as read
    assert streamed.status_code == 413


def test_a_body_that_stops_arriving_is_refused_in_time() -> None:
    async def echo(scope: dict[str, object], receive: object, send: object) -> None:
        request = Request(scope, receive)  # type: ignore[arg-type]
        try:
            body = await request.body()
        except HTTPException as error:
            await PlainTextResponse(error.detail, error.status_code)(scope, receive, send)  # type: ignore[arg-type]
            return
        await PlainTextResponse(f"{len(body)} bytes")(scope, receive, send)  # type: ignore[arg-type]

    app = BodySizeLimitMiddleware(echo, max_bytes=1000, read_timeout=0.2)  # type: ignore[arg-type]
    chunks = [{"type": "http.request", "body": b"0123456789", "more_body": True}]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        if chunks:
            return chunks.pop()
        await asyncio.Event().wait()  # the rest of the body never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    started = time.monotonic()
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert time.monotonic() - started < 2.0
    assert sent[0]["status"] == 408
    assert b"did not all arrive within 0.2 s" in sent[1]["body"]  # type: ignore[operator]


def test_after_the_whole_body_a_wait_for_the_disconnect_has_no_deadline() -> None:
    async def wait_for_disconnect(scope: object, receive: object, send: object) -> None:
        assert (await receive())["type"] == "http.request"  # type: ignore[operator]
        assert (await receive())["type"] == "http.disconnect"  # type: ignore[operator]

    app = BodySizeLimitMiddleware(wait_for_disconnect, max_bytes=1000, read_timeout=0.05)  # type: ignore[arg-type]
    messages = [{"type": "http.disconnect"}, {"type": "http.request", "body": b"{}"}]

    async def receive() -> dict[str, object]:
        message = messages.pop()
        if message["type"] == "http.disconnect":
            await asyncio.sleep(0.2)  # a long-lived response: longer than the read timeout
        return message

    async def send(message: object) -> None:
        raise AssertionError("nothing is sent")

    asyncio.run(app({"type": "http", "headers": []}, receive, send))  # type: ignore[arg-type]
