"""uvicorn's httptools protocol with two changes: a deadline for a request's head, and each
response's head and first body bytes sent in one write.

- uvicorn bounds the idle time between requests (``timeout_keep_alive``), not the time a
  client takes to send a request's line and headers: one that sends half a header and stops
  holds its connection for ever, and enough of them hold every connection the server has.
  Here a head that has not all arrived ``header_timeout`` seconds after the connection
  opened or the request began is answered 408 and the connection closed.
- uvicorn writes a response's status line and headers as soon as the app starts the
  response, then its body: two ``send`` system calls and two TCP segments for a response of
  a few hundred bytes, which the client also reads twice. On a one-row prediction those are
  the largest single cost. Here a request's first write (its head, or a ``100 Continue``) is
  held until its next write, which carries it, or until the event loop's next turn, so a
  streaming response whose body comes later still gets its head at once.

NOTE: this hooks into ``HttpToolsProtocol``'s parser callbacks and the cycle's ``transport``
attribute, which are uvicorn's internals: uvicorn is pinned, and
``tests/integration/test_http_protocol.py`` checks this against the pinned version.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)


class ServingHttpProtocol(HttpToolsProtocol):
    """``http="httptools"``, with a deadline for request heads and one write per response.

    ``header_timeout`` comes through ``functools.partial`` (uvicorn builds the protocol).
    """

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()
        cycle = self.cycle
        # None or unchanged on an upgrade (websockets): nothing to wrap, or already wrapped.
        if cycle is not None and not isinstance(cycle.transport, HeadHoldingTransport):
            # Duck-typed: it passes on everything but write and close (see the class).
            cycle.transport = cast(
                asyncio.Transport, HeadHoldingTransport(cycle.transport, self.loop)
            )

    def _start_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self._header_timeout, self._head_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _head_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        logger.info(
            "Closed a connection from %s: no whole request head within %g s",
            self.client,
            self._header_timeout,
        )
        message = (
            f"the request line and headers did not all arrive within {self._header_timeout:g} s"
        )
        body = orjson.dumps({"error": message})
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()


class HeadHoldingTransport:
    """One request's view of its connection: its first write waits for the next one.

    Everything but ``write`` and ``close`` goes to the connection's transport.
    """

    __slots__ = ("_held", "_holding", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._holding = True  # only the first write is held

    def write(self, data: bytes) -> None:
        if self._holding:
            self._holding = False
            self._held = data
            # A body that does not follow in this turn of the loop must not delay the head.
            self._loop.call_soon(self.flush)
        elif self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held + data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():  # the client may have gone meanwhile
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
