"""One codec per input kind: how each transport's input becomes a model's instances.

A codec turns a native body (JSON or an uploaded file) or Open Inference Protocol tensors
into a ``Payload``, validates it for the runtime that will serve, and describes the kind's
OIP inputs. Adding an input kind (image, text) is one new class in ``CODEC_BY_KIND``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import orjson

from ml.audio import AudioTooLargeError, check_judgeable, decode_audio, max_decoded_samples
from ml.manifest import AudioInput, InputSchema, TabularInput
from ml.runtime import ModelRuntime
from serving.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from serving.payload import InputRecord, Limits, Payload
from serving.v2_codec import InputTensor, TensorBounds

_TABULAR_HINT = 'send {"features": {...}} for one row or {"instances": [{...}, ...]} for a batch'
_MAX_RECORDED_TENSORS = 256
AUDIO_TENSOR = "file"
"""The name of an audio model's one OIP input, as the native routes name the upload."""
MAX_CONCURRENT_DECODES = 2
"""Audio decodes at once per process: each may hold a clip of the decoded-sample budget."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file sent in a form: its bytes and the name the client gave it."""

    data: bytes
    filename: str


@dataclass(slots=True)  # not frozen: one per request, and a frozen __init__ costs 3 times more
class Body:
    """A native request body as read off the wire, before any model looked at it."""

    media_type: str
    """The Content-Type without parameters, lowercased ('' when none was sent)."""
    data: bytes = b""
    is_form: bool = False
    upload: Upload | None = None
    """The form's ``file`` field, when the body was a multipart form that had one."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One OIP input a model takes, as its model metadata lists it."""

    name: str
    datatype: str
    shape: tuple[int, ...]


class InputCodec(ABC):
    """Decoding and validation of one input kind, for every transport."""

    kind: ClassVar[str]

    @abstractmethod
    async def from_body(
        self, body: Body, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        """The payload of a native request body; ``record`` gets what the trace keeps."""

    @abstractmethod
    async def from_tensors(
        self,
        tensors: Sequence[InputTensor],
        schema: InputSchema,
        limits: Limits,
        record: InputRecord,
    ) -> Payload:
        """The payload of OIP input tensors."""

    @abstractmethod
    def tensor_specs(self, schema: InputSchema) -> list[TensorSpec]:
        """The OIP inputs of a model with this input schema."""

    @abstractmethod
    def tensor_bounds(self, schema: InputSchema, limits: Limits) -> TensorBounds:
        """The largest OIP request a model with this schema can take, refused past it."""

    def validate(self, runtime: ModelRuntime, payload: Payload) -> list[Any]:
        """The instances checked against ``runtime``'s schema, ready to predict."""
        if payload.kind != runtime.manifest.input.kind:
            raise InvalidRequest.from_problems(
                "invalid input",
                {
                    "body": f"{runtime.manifest.ref} takes {runtime.manifest.input.kind} input, "
                    f"not {payload.kind}"
                },
            )
        return payload.instances


class TabularCodec(InputCodec):
    """Rows of named features: JSON ``features``/``instances``, or one OIP tensor a feature."""

    kind = "tabular"

    async def from_body(
        self, body: Body, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        media = body.media_type
        if body.is_form or (media and media != "application/json" and not media.endswith("+json")):
            raise UnsupportedMedia(
                f"this model takes JSON features, not {media}: send "
                f"'Content-Type: application/json' and {_TABULAR_HINT}"
            )
        # The bytes until they parse, so that even a rejected body is in the audit trail.
        record.value = body.data
        payload = _parse_tabular_json(body.data, limits.max_batch_rows)
        record.value = payload.record
        return payload

    async def from_tensors(
        self,
        tensors: Sequence[InputTensor],
        schema: InputSchema,
        limits: Limits,
        record: InputRecord,
    ) -> Payload:
        assert isinstance(schema, TabularInput)
        try:
            columns = _feature_columns(tensors, schema)
        except InvalidRequest:
            record.value = {
                "inputs": [
                    {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                    for t in tensors[:_MAX_RECORDED_TENSORS]
                ]
            }
            raise
        count = len(next(iter(columns.values())))
        if count > limits.max_batch_rows:
            raise _batch_too_large(count, limits.max_batch_rows)
        if count == 1:
            rows = [{name: column[0] for name, column in columns.items()}]
        else:
            items = list(columns.items())
            rows = [{name: column[index] for name, column in items} for index in range(count)]
        record.value = rows
        return Payload(self.kind, rows, rows, is_batch=count != 1)

    def tensor_specs(self, schema: InputSchema) -> list[TensorSpec]:
        assert isinstance(schema, TabularInput)
        return [
            TensorSpec(feature.name, _DATATYPE_BY_FEATURE[feature.type], (-1,))
            for feature in schema.features
        ]

    def tensor_bounds(self, schema: InputSchema, limits: Limits) -> TensorBounds:
        assert isinstance(schema, TabularInput)
        # One input per feature, one element per row ([N] or [N, 1]).
        return TensorBounds(
            len(schema.features), limits.max_batch_rows, " (MAX_BATCH_ROWS rows a request)"
        )

    def validate(self, runtime: ModelRuntime, payload: Payload) -> list[Any]:
        super().validate(runtime, payload)
        validator = runtime.tabular_validator
        assert validator is not None
        return validator.validate(payload.instances, "instances" if payload.is_batch else "")


_T = TypeVar("_T")


class _DecodeSlots:
    """At most ``size`` decodes at once; the others wait on the event loop, not in a thread.

    One semaphore per event loop: the codecs are module-wide, shared by every app of the
    process (tests start many, each on its own loop), and an ``asyncio.Semaphore`` belongs
    to the first loop that waits on it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._by_loop = weakref.WeakKeyDictionary()

    async def run(self, function: Callable[[], _T]) -> _T:
        """``function()`` in a thread once a slot is free; the slot is held until it returns.

        Until the thread returns, not until the caller stops waiting: a request cancelled
        mid-decode must not let another decode start beside the one still running.
        """
        slots = self._semaphore()
        await slots.acquire()
        try:
            running = asyncio.ensure_future(asyncio.to_thread(function))
        except BaseException:
            slots.release()
            raise
        running.add_done_callback(lambda done: _release(slots, done))
        return await asyncio.shield(running)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._by_loop.get(loop)
        if slots is None:
            slots = self._by_loop[loop] = asyncio.Semaphore(self.size)
        return slots


def _release(slots: asyncio.Semaphore, done: asyncio.Future[Any]) -> None:
    slots.release()
    if not done.cancelled():
        done.exception()  # retrieved: a caller that was cancelled will never read it


class AudioCodec(InputCodec):
    """One audio file: a multipart upload, or the bytes of one OIP ``BYTES`` tensor.

    A compressed upload can decode to far more than its size (a 97 KB FLAC of silence to
    370 MB): ``decode_audio`` refuses from the header what exceeds the decoded-sample budget,
    and at most ``max_concurrent_decodes`` run at once, so a burst holds a few clips at most.
    """

    kind = "audio"

    def __init__(self, max_concurrent_decodes: int = MAX_CONCURRENT_DECODES) -> None:
        self._slots = _DecodeSlots(max_concurrent_decodes)

    async def from_body(
        self, body: Body, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        assert isinstance(schema, AudioInput)
        formats = ", ".join(schema.formats)
        if not body.is_form:
            raise UnsupportedMedia(
                f"this model takes an audio file ({formats}) as multipart/form-data in a field "
                f"named 'file', not {body.media_type or 'a body without Content-Type'}"
            )
        if body.upload is None:
            problem = f"missing: upload the audio file ({formats}) in a field named 'file'"
            raise InvalidRequest.from_problems("invalid request", {"file": problem})
        return await self._decode(body.upload, schema, limits, record)

    async def from_tensors(
        self,
        tensors: Sequence[InputTensor],
        schema: InputSchema,
        limits: Limits,
        record: InputRecord,
    ) -> Payload:
        assert isinstance(schema, AudioInput)
        expected = (
            f"send one BYTES input of shape [1] named '{AUDIO_TENSOR}' holding the "
            f"audio file ({', '.join(schema.formats)})"
        )
        if len(tensors) != 1 or tensors[0].datatype != "BYTES" or len(tensors[0].data) != 1:
            raise InvalidRequest.from_problems("invalid input", {"inputs": expected})
        if tensors[0].name != AUDIO_TENSOR:  # as the model's metadata names it
            problem = f"unknown input: this model has no input of that name; {expected}"
            raise InvalidRequest.from_problems("invalid input", {tensors[0].name: problem})
        data = tensors[0].data[0]
        # JSON carries the file as text, binary data as bytes.
        raw = data.encode() if isinstance(data, str) else bytes(data)
        return await self._decode(Upload(raw, tensors[0].name), schema, limits, record)

    def tensor_specs(self, schema: InputSchema) -> list[TensorSpec]:
        return [TensorSpec(AUDIO_TENSOR, "BYTES", (1,))]

    def tensor_bounds(self, schema: InputSchema, limits: Limits) -> TensorBounds:
        return TensorBounds(1, 1, " (one audio file a request)")

    async def _decode(
        self, upload: Upload, schema: AudioInput, limits: Limits, record: InputRecord
    ) -> Payload:
        # NOTE: the trace keeps the audio's hash, size and name, never its bytes.
        trace: dict[str, Any] = {
            "sha256": hashlib.sha256(upload.data).hexdigest(),
            "size_bytes": len(upload.data),
            "filename": upload.filename[:255],
        }
        record.value = trace
        max_samples = max_decoded_samples(limits.max_audio_seconds, schema.sample_rate)
        decode = functools.partial(
            decode_audio,
            upload.data,
            limits.max_audio_seconds,
            schema.formats,
            max_samples=max_samples,
        )
        try:
            clip = await self._slots.run(decode)
        except AudioTooLargeError as error:
            raise PayloadTooLarge.from_problems("input too large", error.problems) from error
        trace.update(format=clip.format, duration_seconds=round(clip.duration_seconds, 4))
        check_judgeable(clip)
        extras = {"duration_seconds": trace["duration_seconds"], "sample_rate": schema.sample_rate}
        return Payload(self.kind, [clip], trace, extras=extras)


CODEC_BY_KIND: dict[str, InputCodec] = {
    codec.kind: codec for codec in (TabularCodec(), AudioCodec())
}

_DATATYPE_BY_FEATURE = {"category": "BYTES", "integer": "INT64", "number": "FP64"}
_DATATYPES_BY_FEATURE = {
    "category": frozenset({"BYTES"}),
    "integer": frozenset({"INT64", "INT32"}),
    "number": frozenset({"FP64", "FP32", "INT64", "INT32"}),
}


def codec_for(schema: InputSchema) -> InputCodec:
    return CODEC_BY_KIND[schema.kind]


def _parse_tabular_json(body: bytes, max_rows: int) -> Payload:
    if not body.strip():
        raise _invalid("body", f"the body is empty: {_TABULAR_HINT}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _invalid("body", f"the body is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _invalid("body", f"expected a JSON object: {_TABULAR_HINT}")
    if len(data) != 1 or not ("features" in data or "instances" in data):
        unknown = sorted(set(data) - {"features", "instances"})
        problem = f"expected exactly one of 'features' or 'instances': {_TABULAR_HINT}"
        raise _invalid(unknown[0] if unknown else "body", problem)
    if "features" in data:
        return Payload("tabular", [data["features"]], data["features"])
    instances = data["instances"]
    if not isinstance(instances, list) or not instances:
        raise _invalid("instances", "expected a non-empty list of feature objects")
    if len(instances) > max_rows:
        raise _batch_too_large(len(instances), max_rows)
    return Payload("tabular", instances, instances, is_batch=True)


def _feature_columns(tensors: Sequence[InputTensor], schema: TabularInput) -> dict[str, list[Any]]:
    """Each feature's values, from the tensor named after it: shape [N] or [N, 1].

    One pass over the tensors, which is all a request pays; anything amiss is named by
    ``_tensor_problems``.
    """
    accepted = _accepted_datatypes(schema)
    columns: dict[str, list[Any]] = {}
    rows = len(tensors[0].data) if tensors else 0
    column_shapes = ((rows,), (rows, 1))
    for tensor in tensors:
        name, data = tensor.name, tensor.data
        datatypes = accepted.get(name)
        if datatypes is None or tensor.datatype not in datatypes or name in columns:
            break
        if tensor.shape not in column_shapes or len(data) != rows:
            break
        if tensor.datatype == "BYTES" and data and type(data[0]) is not str:
            data = _texts(data)  # binary data: UTF-8 text, else kept
        columns[name] = data
    else:
        if rows and len(columns) == len(accepted):
            return columns
    raise InvalidRequest.from_problems("invalid input", _tensor_problems(tensors, schema))


# The datatypes each feature accepts, per schema: a request must not rebuild it. Keyed by id
# (a schema is not hashable), each entry dropped when its schema is collected, so that a
# rescanned store's old schemas are not kept and an id is never reused while it is cached.
_ACCEPTED_BY_SCHEMA: dict[int, dict[str, frozenset[str]]] = {}


def _accepted_datatypes(schema: TabularInput) -> dict[str, frozenset[str]]:
    accepted = _ACCEPTED_BY_SCHEMA.get(id(schema))
    if accepted is None:
        accepted = {f.name: _DATATYPES_BY_FEATURE[f.type] for f in schema.features}
        _ACCEPTED_BY_SCHEMA[id(schema)] = accepted
        weakref.finalize(schema, _ACCEPTED_BY_SCHEMA.pop, id(schema), None)
    return accepted


def _tensor_problems(tensors: Sequence[InputTensor], schema: TabularInput) -> dict[str, str]:
    """What is wrong with each input that does not fit the model's features."""
    by_name = {tensor.name: tensor for tensor in tensors}
    problems: dict[str, str] = {}
    for feature in schema.features:
        tensor = by_name.pop(feature.name, None)
        datatypes = _DATATYPES_BY_FEATURE[feature.type]
        if tensor is None:
            problems[feature.name] = (
                f"missing: send an input named '{feature.name}' of "
                f"datatype {_DATATYPE_BY_FEATURE[feature.type]}"
            )
        elif tensor.datatype not in datatypes:
            problems[feature.name] = (
                f"datatype {tensor.datatype}, expected {' or '.join(sorted(datatypes))}"
            )
        elif not _is_column_shape(tensor.shape):
            problems[feature.name] = f"shape {list(tensor.shape)}, expected [N] or [N, 1]"
    for name in by_name:
        problems[name] = "unknown input: this model has no feature of that name"
    if not problems:
        lengths = sorted({len(tensor.data) for tensor in tensors})
        problems["inputs"] = f"every input must have the same number of rows, got {lengths}"
    return problems


def _is_column_shape(shape: tuple[int, ...]) -> bool:
    return shape[0] >= 1 if len(shape) == 1 else len(shape) == 2 and shape[0] >= 1 and shape[1] == 1


def _texts(values: list[bytes]) -> list[str | bytes]:
    """Each element as UTF-8 text, or as it is where it is not text."""
    try:
        return [value.decode("utf-8") for value in values]
    except UnicodeDecodeError:
        return [_text(value) for value in values]


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _batch_too_large(rows: int, max_rows: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a batch of {rows} rows exceeds the limit of {max_rows} (MAX_BATCH_ROWS)"
    )


def _invalid(field_name: str, problem: str) -> InvalidRequest:
    return InvalidRequest.from_problems("invalid request", {field_name: problem})
