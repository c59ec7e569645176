"""The server's HTTP protocol against the pinned uvicorn: one write per whole response,
nothing held back that a client waits for (a streamed body's head, ``100 Continue``), and a
deadline for request heads."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from api.http_protocol import ServingHttpProtocol
from tests.live_server import free_port

Message = dict[str, Any]
App = Callable[[dict[str, Any], Callable[[], Awaitable[Message]], Any], Awaitable[None]]


class RecordingTransport:
    """The connection's real transport, with every write recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport, self._writes = transport, writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@asynccontextmanager
async def serving(app: App, header_timeout: float = 10.0) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A real uvicorn server on a free port with the server's protocol; its writes."""
    writes: list[bytes] = []

    class Recorded(ServingHttpProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, header_timeout=header_timeout, **kwargs)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(RecordingTransport(transport, writes))  # type: ignore[arg-type]

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=Recorded, loop="none", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port, writes
    finally:
        server.should_exit = True
        await task


async def exchange(port: int, request: bytes, until: bytes) -> bytes:
    """Send ``request``; read until the answer ends with ``until``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = b""
    while not answer.endswith(until):
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, answer
        answer += chunk
    writer.close()
    return answer


async def whole(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b'{"ok":true}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_a_whole_response_goes_out_in_one_write() -> None:
    async def scenario() -> None:
        async with serving(whole) as (port, writes):
            answer = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b'{"ok":true}')
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert writes == [answer]

    asyncio.run(scenario())


def test_pipelined_requests_are_answered_in_order_one_write_each() -> None:
    async def scenario() -> None:
        async with serving(whole) as (port, writes):
            request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            answer = b""
            while answer.count(b'{"ok":true}') < 2:
                answer += await asyncio.wait_for(reader.read(65536), 5)
            writer.close()
        assert answer.count(b"HTTP/1.1 200 OK") == 2
        assert len(writes) == 2 and b"".join(writes) == answer

    asyncio.run(scenario())


def test_a_head_request_gets_its_head_without_a_body_write() -> None:
    async def scenario() -> None:
        async with serving(whole) as (port, writes):
            answer = await exchange(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"content-length: 11" in answer
        assert writes == [answer]

    asyncio.run(scenario())


def test_a_streamed_body_gets_its_head_before_the_body_is_ready() -> None:
    body_may_come = asyncio.Event()

    async def streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await body_may_come.wait()  # the client must already have the head
        await send({"type": "http.response.body", "body": b"late"})

    async def scenario() -> None:
        async with serving(streaming) as (port, writes):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += await asyncio.wait_for(reader.read(65536), 5)
            assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head
            body_may_come.set()
            rest = b""
            while not rest.endswith(b"0\r\n\r\n"):
                rest += await asyncio.wait_for(reader.read(65536), 5)
            writer.close()
        assert rest == b"4\r\nlate\r\n0\r\n\r\n"
        assert writes == [head, rest]

    asyncio.run(scenario())


def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        body = message["body"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def scenario() -> None:
        async with serving(echo) as (port, _):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            loop = asyncio.get_running_loop()
            client.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            interim = await loop.run_in_executor(None, client.recv, 65536)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            client.sendall(b"hello")
            answer = b""
            while not answer.endswith(b"hello"):
                answer += await loop.run_in_executor(None, client.recv, 65536)
            client.close()
        assert answer.startswith(b"HTTP/1.1 200 OK")

    asyncio.run(scenario())


def test_a_request_head_that_stops_arriving_is_answered_408_and_closed() -> None:
    async def scenario() -> None:
        async with serving(whole, header_timeout=0.3) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half")  # and nothing more
            started = asyncio.get_running_loop().time()
            answer = await asyncio.wait_for(reader.read(), 5)  # until the server closes
            waited = asyncio.get_running_loop().time() - started
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert answer.endswith(
            b'{"error":"the request line and headers did not all arrive within 0.3 s"}'
        )
        assert 0.2 < waited < 2

    asyncio.run(scenario())


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout() -> None:
    async def scenario() -> None:
        async with serving(whole, header_timeout=0.3) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")

    asyncio.run(scenario())


def test_the_header_deadline_spares_a_slow_app_and_the_requests_after_it() -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.5)  # longer than the header timeout: the head was whole
        await whole(scope, receive, send)

    async def scenario() -> None:
        async with serving(slow, header_timeout=0.3) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(2):  # the same connection: the second head has its own deadline
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = b""
                while not answer.endswith(b'{"ok":true}'):
                    answer += await asyncio.wait_for(reader.read(65536), 5)
                assert answer.startswith(b"HTTP/1.1 200 OK")
            writer.close()

    asyncio.run(scenario())
