"""Reading a prediction request's body: JSON features for tabular models, a file for audio.

Everything here rejects bad input with a 4xx that names the problem; nothing reaches a
model unless its body was understood.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from ml.audio import decode_audio
from ml.manifest import AudioInput, InputSchema

_TABULAR_HINT = 'send {"features": {...}} for one row or {"instances": [{...}, ...]} for a batch'


@dataclass(slots=True)
class ReceivedInput:
    """What the trace records of the input, filled in as the body is read (even a bad one)."""

    value: Any = None


@dataclass(slots=True)
class Payload:
    """A request body understood: the instances to predict and what the trace records."""

    kind: str
    instances: list[Any]
    record: Any
    is_batch: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    """Facts about the input to return to the client (audio duration and format)."""


_RAW_BODY_CHARS = 2000


async def read_payload(
    request: Request,
    schema: InputSchema,
    received: ReceivedInput,
    *,
    max_rows: int,
    max_audio_seconds: float,
) -> Payload:
    """The body as the model's input kind expects it; 413, 415 or 422 otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if isinstance(schema, AudioInput):
        return await _read_audio(request, content_type, schema, received, max_audio_seconds)
    body = await _read_json_body(request, content_type)
    # Kept as text until it parses, so that even a rejected body is in the audit trail.
    received.value = {"raw": body[:_RAW_BODY_CHARS].decode("utf-8", errors="replace")}
    payload = _parse_tabular(body, max_rows)
    received.value = payload.record
    return payload


async def _read_json_body(request: Request, content_type: str) -> bytes:
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"this model takes JSON features, not {content_type}: send "
            f"'Content-Type: application/json' and {_TABULAR_HINT}"
        )
    return await request.body()


def _parse_tabular(body: bytes, max_rows: int) -> Payload:
    if not body.strip():
        raise _invalid("body", f"the body is empty: {_TABULAR_HINT}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _invalid("body", f"the body is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _invalid("body", f"expected a JSON object: {_TABULAR_HINT}")
    unknown = sorted(set(data) - {"features", "instances"})
    if unknown or len(data) != 1:
        field_name = unknown[0] if unknown else "body"
        problem = f"expected exactly one of 'features' or 'instances': {_TABULAR_HINT}"
        raise _invalid(field_name, problem)
    if "features" in data:
        return Payload("tabular", [data["features"]], data["features"])
    return _parse_instances(data["instances"], max_rows)


def _parse_instances(instances: Any, max_rows: int) -> Payload:
    if not isinstance(instances, list) or not instances:
        raise _invalid("instances", "expected a non-empty list of feature objects")
    if len(instances) > max_rows:
        raise PayloadTooLargeError(
            f"a batch of {len(instances)} rows exceeds the limit of {max_rows} (MAX_BATCH_ROWS)"
        )
    return Payload("tabular", instances, instances, is_batch=True)


async def _read_audio(
    request: Request,
    content_type: str,
    schema: AudioInput,
    received: ReceivedInput,
    max_seconds: float,
) -> Payload:
    formats = ", ".join(schema.formats)
    if content_type != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            f"this model takes an audio file ({formats}) as multipart/form-data in a field "
            f"named 'file', not {content_type or 'a body without Content-Type'}"
        )
    data, filename = await _read_upload(request, formats)
    # NOTE: the trace keeps the audio's hash, size and name, never its bytes.
    record: dict[str, Any] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "filename": filename,
    }
    received.value = record
    clip = await run_in_threadpool(decode_audio, data, max_seconds, schema.formats)
    record.update(format=clip.format, duration_seconds=round(clip.duration_seconds, 4))
    extras = {"duration_seconds": record["duration_seconds"], "sample_rate": schema.sample_rate}
    return Payload("audio", [clip], record, extras=extras)


async def _read_upload(request: Request, formats: str) -> tuple[bytes, str]:
    """The bytes and name of the ``file`` field; the form's temporary files are closed."""
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            problem = f"missing: upload the audio file ({formats}) in a field named 'file'"
            raise _invalid("file", problem)
        return await upload.read(), (upload.filename or "")[:255]


def _invalid(field_name: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError.from_problems("invalid request", {field_name: problem})
