"""Pure ASGI middleware (no per-request task or body copy): request ids, body size limit."""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.asgi import header, send_bytes
from serving.ids import new_id

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
# A client's own id is kept when it is short and harmless to log and store.
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Gives every request an id (the client's when sane), echoed as ``X-Request-ID``.

    It also answers an unexpected exception with a JSON 500 that carries the id, so that
    no response, however it ends, lacks one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("Unhandled error in request %s", request_id)
            if started:
                raise
            await _send_internal_error(send_with_id, request_id)


def _incoming_request_id(scope: Scope) -> str | None:
    value = header(scope, REQUEST_ID_HEADER)
    return value.decode() if value is not None and _SANE_REQUEST_ID.match(value) else None


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = orjson.dumps({"error": "internal error", "request_id": request_id})
    await send_bytes(send, 500, body)


class BodySizeLimitMiddleware:
    """Bounds a request body: past ``max_bytes`` the reader gets a 413 error, and a body that
    has not all arrived ``read_timeout`` seconds after its reading began a 408 (a client that
    trickles its body would otherwise hold the request, and its connection, for ever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self._reads = OverdueReads(check_every=min(1.0, read_timeout / 4))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        received = 0
        complete = False
        deadline: float | None = None

        async def limited_receive() -> Message:
            nonlocal received, complete, deadline
            if declared is not None and declared > self.max_bytes:
                raise self._too_large(declared)
            if complete:  # after the body: a wait for the disconnect, which may be long
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.read_timeout
            try:
                message = await self._reads.read(receive, deadline)
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body did not all arrive within {self.read_timeout:g} s"
                ) from None
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large(received)
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self, size: int) -> HTTPException:
        # An HTTPException, not our own error type: FastAPI lets it through its body parsing
        # (any other exception there becomes a vague 400), and the handlers answer 413.
        return HTTPException(
            413,
            f"request body of {size} bytes or more exceeds the limit of {self.max_bytes} bytes "
            "(MAX_BODY_BYTES)",
        )


class OverdueReads:
    """Body reads in progress, each with its deadline, watched by one timer per event loop.

    ``asyncio.timeout`` around every read would cost every request a timer handle, its
    cancellation and the task's cancel bookkeeping, a few percent of a one-row prediction,
    although a small body has almost always arrived whole before its request starts. Here a
    read costs a dict entry; a timer runs only while reads wait, and finds an overdue one at
    most ``check_every`` seconds late.
    """

    def __init__(self, check_every: float) -> None:
        self._check_every = check_every
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopReads] = (
            weakref.WeakKeyDictionary()
        )

    async def read(self, receive: Receive, deadline: float) -> Message:
        """``await receive()``; ``TimeoutError`` when it is still waiting at ``deadline``."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        reads = self._loops.get(loop)
        if reads is None:
            reads = self._loops[loop] = _LoopReads(loop, self._check_every)
        reads.waiting[task] = deadline
        if reads.timer is None:
            reads.timer = loop.call_later(self._check_every, reads.cancel_overdue)
        try:
            return await receive()
        except asyncio.CancelledError:
            if task not in reads.cancelled:
                raise
            task.uncancel()  # the cancellation was this deadline's, not the caller's
            raise TimeoutError from None
        finally:
            del reads.waiting[task]
            reads.cancelled.discard(task)


class _LoopReads:
    """The reads of one event loop, and its timer while any waits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, check_every: float) -> None:
        self.loop = loop
        self.check_every = check_every
        self.waiting: dict[asyncio.Task[Any], float] = {}
        self.cancelled: set[asyncio.Task[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None

    def cancel_overdue(self) -> None:
        now = self.loop.time()
        for task, deadline in self.waiting.items():
            if deadline <= now and task not in self.cancelled:
                self.cancelled.add(task)
                task.cancel()
        self.timer = (
            self.loop.call_later(self.check_every, self.cancel_overdue) if self.waiting else None
        )


def _declared_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    return int(value) if value is not None and value.isdigit() else None
