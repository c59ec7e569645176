"""Reading a request body off the ASGI wire, its failures as the data plane's errors."""

from __future__ import annotations

import zlib

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from serving.codecs import Body, Upload
from serving.errors import BodyTimeout, InvalidRequest, PayloadTooLarge, ServingError

_DISCONNECTED = "the client closed the connection before the whole body arrived"


async def read_body(receive: Receive) -> bytes:
    """The whole body; ``PayloadTooLarge`` past MAX_BODY_BYTES, ``InvalidRequest`` if cut."""
    chunks = []
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidRequest(_DISCONNECTED)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
    except HTTPException as error:
        raise as_wire_error(error) from error


async def read_native_body(scope: Scope, receive: Receive, media_type: str) -> Body:
    """A JSON body as bytes, or a multipart form's ``file`` upload."""
    if media_type != "multipart/form-data":
        return Body(media_type, await read_body(receive))
    request = Request(scope, receive)
    try:
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return Body(media_type, is_form=True)
            return Body(
                media_type, is_form=True, upload=Upload(await upload.read(), upload.filename or "")
            )
    except HTTPException as error:  # a malformed form, or one past the size limit
        wire_error = as_wire_error(error)
        if type(wire_error) is InvalidRequest:  # the form itself: say what a good one is
            wire_error = InvalidRequest(
                f"the multipart/form-data body is malformed ({error.detail}): upload the "
                "file in a field named 'file' (curl -F file=@clip.flac)"
            )
        raise wire_error from error
    except ClientDisconnect as error:
        raise InvalidRequest(_DISCONNECTED) from error


def inflate(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """A gzip- or deflate-compressed body expanded, never past ``max_bytes``."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding.strip().lower())
    if wbits is None:
        raise InvalidRequest(f"unsupported Content-Encoding {encoding!r}: use gzip or deflate")
    decompressor = zlib.decompressobj(wbits)
    try:
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise InvalidRequest(f"the body is not valid {encoding} data ({error})") from error
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"the body expands past the limit of {max_bytes} bytes (MAX_BODY_BYTES)"
        )
    return data


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def as_wire_error(error: HTTPException) -> ServingError:
    if error.status_code == 413:
        return PayloadTooLarge(str(error.detail))
    if error.status_code == 408:
        return BodyTimeout(str(error.detail))
    return InvalidRequest(str(error.detail))
