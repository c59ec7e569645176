"""uvicorn's httptools protocol, sending each response's head and first body bytes in one write.

uvicorn writes a response's status line and headers as soon as the app starts the response,
then its body: two ``send`` system calls and two TCP segments for a response of a few
hundred bytes, which the client also reads twice. On a one-row prediction those are a tenth
of the whole request's cost. Here a request's first write (its head, or a ``100 Continue``)
is held until its next write, which carries it, or until the event loop's next turn, so a
streaming response whose body comes later still gets its head at once.

NOTE: this hooks into ``HttpToolsProtocol.on_headers_complete`` and the cycle's
``transport`` attribute, which are uvicorn's internals: uvicorn is pinned, and
``tests/e2e/test_http_protocol.py`` checks this against the pinned version.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``http="httptools"``, with each response's head sent together with its body."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # None or unchanged on an upgrade (websockets): nothing to wrap, or already wrapped.
        if cycle is not None and not isinstance(cycle.transport, HeadHoldingTransport):
            # Duck-typed: it passes on everything but write and close (see the class).
            cycle.transport = cast(
                asyncio.Transport, HeadHoldingTransport(cycle.transport, self.loop)
            )


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
