"""The pure ASGI middleware: request ids on every response, even a crash; body size limit."""

from __future__ import annotations

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
