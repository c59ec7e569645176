"""What the plain ASGI code (middleware, fast routes) shares: header look-up, whole responses."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Scope, Send


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase), as sent."""
    for key, value in scope["headers"]:
        if key == name:
            found: bytes = value
            return found
    return None


def text_header(scope: Scope, name: bytes) -> str | None:
    """``header`` decoded as latin-1, as HTTP headers are."""
    value = header(scope, name)
    return None if value is None else value.decode("latin-1")


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send a whole response in one message (length known, no chunking)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(
                    (name.lower().encode(), value.encode())
                    for name, value in (headers or {}).items()
                ),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
