"""Wire codec of the Open Inference Protocol V2 (KServe / Triton / MLServer REST), free of HTTP.

A request body is one JSON object, optionally followed by the binary tensor data extension:
raw tensor bytes, in the order of the inputs that carry ``parameters.binary_data_size``, after a
JSON header whose length the ``Inference-Header-Content-Length`` HTTP header gives. Numbers are
little-endian, row-major, without padding; BOOL is one byte (0 or 1) per element; each BYTES
element is a 4-byte little-endian length followed by that many bytes. Responses use the same
layout for the outputs the client asked to get as binary.

Decoding refuses every malformed body with :class:`V2RequestError` (and nothing else), whose
message says what is wrong; the caller turns it into a 400 ``{"error": message}``.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Protocol

import msgspec
import numpy as np
import orjson

DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    }
)

# Little-endian numpy dtype of each fixed-size datatype (BYTES has none).
_NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_INT_RANGES = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in _NUMPY_DTYPES.items()
    if dtype.kind in "iu"
}
_FLOAT_MAX = {
    name: float(np.finfo(dtype).max) for name, dtype in _NUMPY_DTYPES.items() if dtype.kind == "f"
}

MAX_ELEMENTS = 2**31
"""A tensor may hold at most this many elements (what Triton's 32-bit sizes allow)."""


@dataclass(frozen=True, slots=True)
class TensorBounds:
    """The most inputs a request may have, and elements an input, checked before decoding.

    Decoding runs on the event loop: a 10 MB body of 2.5 million empty BYTES elements took
    seconds of it, stalling every other request. The transport passes the model's own bounds
    (a tabular model takes one input per feature and one element per row), so a request
    larger than any the model could take is refused before its tensors are read.
    """

    inputs: int | None = None
    """How many inputs the model takes (None: any number). A request with more than twice as
    many is refused before decoding; up to that, the model's own checks name the unknown."""
    max_elements: int = MAX_ELEMENTS
    limit_hint: str = ""
    """Said after an element count over ``max_elements`` (e.g. which setting bounds it)."""

    def takes_inputs(self, count: int) -> bool:
        """Whether a request of ``count`` inputs is decoded (not refused before)."""
        return self.inputs is None or count <= 2 * self.inputs


_HEADER_LENGTH = re.compile(r"[0-9]{1,18}")
_LENGTH_PREFIX = struct.Struct("<I")


class V2RequestError(ValueError):
    """The request is not a valid V2 inference request; the message says why."""


class Tensor(msgspec.Struct):
    """One input or output tensor.

    ``data`` is flat, in row-major order: for BYTES, ``str`` when the element came as JSON
    text and ``bytes`` when it came as binary data (outputs take either); Python ``bool``,
    ``int`` or ``float`` otherwise. A msgspec struct, not a dataclass: a request makes one per
    feature, and its constructor is C.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class InputTensor(Protocol):
    """What the codecs read of a decoded input: a ``Tensor``, or a struct of the quick path."""

    @property
    def name(self) -> str: ...

    @property
    def datatype(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def data(self) -> list[Any]: ...

    @property
    def parameters(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output the client named; ``binary``: send it as binary data, not in the JSON."""

    name: str
    binary: bool


@dataclass(slots=True)  # not frozen: one per request, and a frozen __init__ costs 3 times more
class InferenceRequest:
    """A decoded request. ``outputs == []``: the client wants every output of the model."""

    id: str | None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput]
    binary_outputs_by_default: bool
    parameters: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Request


def parse_header_length(value: str | None) -> int | None:
    """The ``Inference-Header-Content-Length`` HTTP header as an int (``None`` when absent)."""
    if value is None:
        return None
    text = value.strip()
    if not _HEADER_LENGTH.fullmatch(text):
        raise V2RequestError(
            f"Inference-Header-Content-Length must be a non-negative integer, got {value!r}"
        )
    return int(text)


def decode_infer_request(
    body: bytes, header_length: int | None, bounds: TensorBounds = TensorBounds()
) -> InferenceRequest:
    """Decode a request body; ``header_length``: the JSON header's length, ``None``: all JSON.

    A request past ``bounds`` is refused before the data of its tensors is read. The usual
    requests take a quick path; any other goes through ``decode_with_full_checks``.
    """
    if header_length is None:
        quick = _quick_request(body, bounds)
    else:
        quick = _quick_binary_request(body, header_length, bounds)
    if quick is not None:
        return quick
    return decode_with_full_checks(body, header_length, bounds)


def decode_with_full_checks(
    body: bytes, header_length: int | None, bounds: TensorBounds = TensorBounds()
) -> InferenceRequest:
    """``decode_infer_request`` without its quick paths: every check, each refusal named.

    What the quick paths accept, this accepts and decodes the same way (the tests hold them
    to it).
    """
    header, binary = _split_body(body, header_length)
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        raise V2RequestError(f"the request is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise V2RequestError("the request must be a JSON object")

    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2RequestError("'id' must be a string")
    parameters = _parameters(document, "the request")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise V2RequestError("parameters.binary_data_output must be true or false")

    inputs = _decode_inputs(document.get("inputs"), binary, header_length is not None, bounds)
    outputs = _decode_outputs(document.get("outputs"), binary_default)
    return InferenceRequest(
        id=request_id,
        inputs=inputs,
        outputs=outputs,
        binary_outputs_by_default=binary_default,
        parameters=parameters,
    )


def _split_body(body: bytes, header_length: int | None) -> tuple[memoryview, memoryview]:
    view = memoryview(body)
    if header_length is None:
        return view, view[len(view) :]
    if isinstance(header_length, bool) or not isinstance(header_length, int):
        raise V2RequestError("Inference-Header-Content-Length must be an integer")
    if header_length <= 0:
        raise V2RequestError(
            f"Inference-Header-Content-Length must be positive, got {header_length}"
        )
    if header_length > len(view):
        raise V2RequestError(
            f"Inference-Header-Content-Length is {header_length} but the body has only "
            f"{len(view)} bytes"
        )
    return view[:header_length], view[header_length:]


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = holder.get("parameters", {})
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise V2RequestError(f"parameters of {what} must be a JSON object")
    return parameters


def _decode_inputs(
    raw: Any, binary: memoryview, has_header_length: bool, bounds: TensorBounds
) -> list[InputTensor]:
    if not isinstance(raw, list):
        raise V2RequestError("the request needs an 'inputs' list")
    if not raw:
        raise V2RequestError("'inputs' is empty")
    if not bounds.takes_inputs(len(raw)):
        raise V2RequestError(
            f"the request has {len(raw)} inputs; this model takes {bounds.inputs} "
            "(see its metadata for their names)"
        )
    inputs: list[InputTensor] = []
    names: set[str] = set()
    offset = 0
    for index, item in enumerate(raw):
        simple = _simple_json_tensor(item, bounds.max_elements)
        if simple is not None and simple.name not in names:
            names.add(simple.name)
            inputs.append(simple)
            continue
        if not isinstance(item, dict):
            raise V2RequestError(f"inputs[{index}] must be a JSON object")
        name, datatype, shape = _tensor_header(item, f"inputs[{index}]", bounds)
        if name in names:
            raise V2RequestError(f"input {name!r} is given twice")
        names.add(name)
        parameters = dict(_parameters(item, f"input {name!r}"))
        _refuse_shared_memory(parameters, f"input {name!r}")
        size = parameters.pop("binary_data_size", None)
        if size is None:
            data = _json_data(item, name, datatype, shape)
        else:
            if not has_header_length:
                raise V2RequestError(
                    f"input {name!r} has binary_data_size but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if "data" in item:
                raise V2RequestError(f"input {name!r} has both 'data' and binary_data_size")
            chunk = _binary_chunk(binary, offset, size, name)
            offset += len(chunk)
            data = _binary_data(chunk, name, datatype, shape)
        inputs.append(Tensor(name, datatype, shape, data, parameters))
    if offset != len(binary):
        raise V2RequestError(
            f"the body has {len(binary) - offset} bytes after the binary data of the inputs "
            f"(their binary_data_size add up to {offset})"
        )
    return inputs


def _simple_json_tensor(item: Any, max_elements: int) -> Tensor | None:
    """The common input quickly: JSON data, flat, shape [N] or [N, 1], no parameters.

    ``None`` for anything else, valid or not: the full checks then decode it or name what is
    wrong. What this accepts, they would accept the same way.
    """
    if type(item) is not dict or len(item) != 4:
        return None
    try:
        name, datatype, shape, data = item["name"], item["datatype"], item["shape"], item["data"]
    except KeyError:
        return None
    if type(name) is not str or type(shape) is not list or type(data) is not list:
        return None
    return _quick_tensor(name, datatype, shape, data, max_elements)


def _quick_tensor(
    name: str, datatype: Any, shape: list[Any], data: list[Any], max_elements: int
) -> Tensor | None:
    rows = len(data)
    if rows > max_elements:  # the full checks refuse it without reading its values
        return None
    if not name or (shape != [rows] and shape != [rows, 1]) or type(shape[0]) is not int:
        return None
    if datatype == "BYTES":
        for value in data:
            if type(value) is not str:
                return None
        return Tensor(name, datatype, tuple(shape), data)
    limits = _SIMPLE_LIMITS.get(datatype) if type(datatype) is str else None
    if limits is None:
        return None
    low, high, number_types = limits
    for value in data:
        if type(value) not in number_types or not low <= value <= high:
            return None
    if float in number_types:
        data = [float(value) for value in data]
    return Tensor(name, datatype, tuple(shape), data)


def _bounded(kind: type, datatype: str) -> Any:
    low, high = (_INT_RANGES if kind is int else _FLOAT_RANGES)[datatype]
    return Annotated[kind, msgspec.Meta(ge=low, le=high)]


_FLOAT_RANGES = {name: (-limit, limit) for name, limit in _FLOAT_MAX.items()}


# One struct per datatype the quick path reads, told apart by "datatype": msgspec checks each
# element's type and range while it parses, in C, so a plain JSON request costs a few Python
# steps per input instead of a check per element. Anything else fails to decode and goes to
# the full checks, which accept the same requests and name what is wrong with the others.
# The structs are the request's input tensors as they are (``InputTensor``): copying 30 of
# them into ``Tensor`` cost more than parsing the body.
class _QuickInput(msgspec.Struct):
    name: str
    shape: tuple[int, ...]

    @property
    def parameters(self) -> dict[str, Any]:
        return {}  # the quick path takes no input that has parameters (InputTensor's)


class _QuickBytes(_QuickInput, tag_field="datatype", tag="BYTES", forbid_unknown_fields=True):
    datatype: ClassVar[str] = "BYTES"
    data: list[str]


class _QuickInt64(_QuickInput, tag_field="datatype", tag="INT64", forbid_unknown_fields=True):
    datatype: ClassVar[str] = "INT64"
    data: list[_bounded(int, "INT64")]  # type: ignore[valid-type]


class _QuickInt32(_QuickInput, tag_field="datatype", tag="INT32", forbid_unknown_fields=True):
    datatype: ClassVar[str] = "INT32"
    data: list[_bounded(int, "INT32")]  # type: ignore[valid-type]


class _QuickFp64(_QuickInput, tag_field="datatype", tag="FP64", forbid_unknown_fields=True):
    datatype: ClassVar[str] = "FP64"
    data: list[_bounded(float, "FP64")]  # type: ignore[valid-type]


_QuickTensor = _QuickBytes | _QuickInt64 | _QuickInt32 | _QuickFp64


# A plain value of the request's or an output's parameters. A number that JSON parsers read
# differently (an integer past 64 bits, a float past FP64's range) fails to decode here, so
# that the full checks, which read it with orjson, decide (msgspec bounds an int to int64).
_QuickValue = (
    bool
    | str
    | None
    | Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX["FP64"], le=_FLOAT_MAX["FP64"])]
)


class _QuickRequestFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a quick request carries besides its inputs: what tritonclient sends, plain.

    An unknown field is refused, not skipped: msgspec would skip it unread, where the full
    checks read it (and refuse one that is not valid JSON).
    """

    id: str | None = None
    outputs: list[dict[str, _QuickValue | dict[str, _QuickValue]]] | None = None
    parameters: dict[str, _QuickValue] | None = None


class _QuickRequest(_QuickRequestFields, kw_only=True):
    inputs: list[_QuickTensor]


_QUICK_DECODER = msgspec.json.Decoder(_QuickRequest)


def _quick_request(body: bytes, bounds: TensorBounds) -> InferenceRequest | None:
    """An all-JSON request of plain inputs quickly; ``None`` for anything else.

    Anything unusual, valid or not, goes to the full checks, which name what is wrong.
    """
    try:
        document = _QUICK_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):
        # msgspec recurses per level and hits Python's limit (RecursionError, not a
        # DecodeError) below orjson's 1,024 levels: the full checks then answer 400.
        return None
    inputs: list[InputTensor] = list(document.inputs)
    if not inputs or not bounds.takes_inputs(len(inputs)):
        return None
    max_elements = bounds.max_elements
    for item in inputs:
        rows = len(item.data)
        shape = item.shape
        if rows > max_elements or (shape != (rows,) and shape != (rows, 1)):
            return None
    request = _quick_inference_request(document, {item.name for item in inputs}, len(inputs))
    if request is not None:
        request.inputs = inputs
    return request


def _quick_inference_request(
    document: _QuickRequestFields, names: set[str], count: int
) -> InferenceRequest | None:
    """The request around ``count`` quickly decoded inputs named ``names``, its inputs yet
    to be set; ``None`` for anything unusual."""
    if len(names) != count or "" in names:
        return None
    parameters = document.parameters or {}
    binary_default = parameters.get("binary_data_output", False)
    if type(binary_default) is not bool:
        return None
    try:
        outputs = _decode_outputs(document.outputs, binary_default)
    except V2RequestError:
        return None
    return InferenceRequest(
        id=document.id,
        inputs=[],
        outputs=outputs,
        binary_outputs_by_default=binary_default,
        parameters=parameters,
    )


# The binary tensor data extension, quickly: what tritonclient sends by default, every input
# with its binary_data_size and nothing else, each of shape [N] or [N, 1]. msgspec reads the
# header, which the full checks walk key by key. tritonclient sends the same header for
# every request of the same shapes (it has no id unless the caller gives one), so what the
# header says is kept, by its bytes: where each input's data lies, and one ``struct`` that
# reads them all.
class _QuickBinarySize(msgspec.Struct, forbid_unknown_fields=True):
    binary_data_size: Annotated[int, msgspec.Meta(ge=0)]


class _QuickBinaryInput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: _QuickBinarySize


class _QuickBinaryRequest(_QuickRequestFields, kw_only=True):
    inputs: list[_QuickBinaryInput]


_QUICK_BINARY_DECODER = msgspec.json.Decoder(_QuickBinaryRequest)


@dataclass(frozen=True, slots=True)
class _BinaryInput:
    """One input's place in the binary data: bytes ``start:stop``, values ``first:last`` of
    the layout's one unpack (for a BYTES element: its length, then its bytes)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    start: int
    stop: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class _BinaryLayout:
    """What a quick binary header says, read once: its inputs, and the request around them."""

    inputs: tuple[_BinaryInput, ...]
    size: int
    """The bytes of binary data the header's inputs add up to."""
    reader: struct.Struct | None
    """Every input's values in one unpack; ``None`` when one input cannot be read so (BOOL,
    whose bytes must be 0 or 1; BYTES of several elements, whose lengths vary; a size that
    does not fit its shape, or that ``struct`` cannot hold): each is then read alone."""
    request: InferenceRequest
    """The request without its inputs; copied for each request."""

    def read(self, binary: memoryview) -> list[InputTensor] | None:
        """The inputs in ``binary``; ``None`` where the full checks would refuse them."""
        if len(binary) != self.size:
            return None
        if self.reader is None:
            try:
                return [
                    Tensor(
                        i.name,
                        i.datatype,
                        i.shape,
                        _binary_data(binary[i.start : i.stop], i.name, i.datatype, i.shape),
                    )
                    for i in self.inputs
                ]
            except V2RequestError:
                return None
        values = self.reader.unpack(binary)
        inputs: list[InputTensor] = []
        for i in self.inputs:
            if i.datatype == "BYTES" and i.last - i.first == 2:
                length, text = values[i.first], values[i.first + 1]
                if length != len(text):
                    return None
                data = [text]
            else:
                data = list(values[i.first : i.last])
            inputs.append(Tensor(i.name, i.datatype, i.shape, data))
        return inputs


_MAX_KEPT_HEADER = 16 * 1024
"""A longer header is read for each request, never kept: the kept layouts stay small."""


@functools.lru_cache(maxsize=128)
def _kept_binary_layout(header: bytes, bounds: TensorBounds) -> _BinaryLayout | None:
    return _binary_layout(header, bounds)


def _binary_layout(header: bytes | memoryview, bounds: TensorBounds) -> _BinaryLayout | None:
    """What a quick binary header says; ``None`` for anything else (the full checks)."""
    try:
        document = _QUICK_BINARY_DECODER.decode(header)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not document.inputs or not bounds.takes_inputs(len(document.inputs)):
        return None
    inputs: list[_BinaryInput] = []
    codes: list[str] | None = []
    start = first = 0
    for item in document.inputs:
        name, datatype, shape = item.name, item.datatype, item.shape
        if len(shape) != 1 and (len(shape) != 2 or shape[1] != 1):
            return None
        count, size = shape[0], item.parameters.binary_data_size
        if not 0 <= count <= bounds.max_elements or datatype not in DATATYPES:
            return None
        code, width = _unpack_code(datatype, count, size)
        if code is None:
            codes = None
        elif codes is not None:
            codes.append(code)
        inputs.append(
            _BinaryInput(name, datatype, shape, start, start + size, first, first + width)
        )
        start, first = start + size, first + width
    request = _quick_inference_request(document, {i.name for i in inputs}, len(inputs))
    if request is None:
        return None
    return _BinaryLayout(tuple(inputs), start, _one_unpack(codes), request)


def _one_unpack(codes: list[str] | None) -> struct.Struct | None:
    if codes is None:
        return None
    try:
        return struct.Struct("<" + "".join(codes))
    except struct.error:  # sizes past what struct can hold: past any body, read alone
        return None


def _unpack_code(datatype: str, count: int, size: int) -> tuple[str | None, int]:
    """An input's part of the one unpack, and how many values it gives; ``None`` when it
    must be read alone (if it is wrong, the read fails and the full checks name why)."""
    if datatype == "BYTES":
        if count == 1 and size >= _LENGTH_PREFIX.size:
            return f"I{size - _LENGTH_PREFIX.size}s", 2
        return ("", 0) if count == size == 0 else (None, 0)
    if datatype == "BOOL" or size != count * _NUMPY_DTYPES[datatype].itemsize:
        return None, 0
    return f"{count}{_STRUCT_CODES[datatype]}", count


def _quick_binary_request(
    body: bytes, header_length: int, bounds: TensorBounds
) -> InferenceRequest | None:
    """A request whose every input is binary data quickly; ``None`` for anything else.

    As for ``_quick_request``: anything unusual, valid or not, goes to the full checks.
    """
    try:
        header, binary = _split_body(body, header_length)
    except V2RequestError:
        return None
    if len(header) <= _MAX_KEPT_HEADER:
        layout = _kept_binary_layout(bytes(header), bounds)
    else:
        layout = _binary_layout(header, bounds)
    if layout is None:
        return None
    inputs = layout.read(binary)
    if inputs is None:
        return None
    around = layout.request
    return InferenceRequest(
        id=around.id,
        inputs=inputs,
        outputs=list(around.outputs),
        binary_outputs_by_default=around.binary_outputs_by_default,
        parameters=dict(around.parameters),
    )


# (low, high, element types) of the datatypes the quick path reads.
_SIMPLE_LIMITS: dict[str, tuple[float, float, frozenset[type]]] = {
    "INT64": (*_INT_RANGES["INT64"], frozenset({int})),
    "INT32": (*_INT_RANGES["INT32"], frozenset({int})),
    "FP64": (-_FLOAT_MAX["FP64"], _FLOAT_MAX["FP64"], frozenset({int, float})),
}


def _tensor_header(
    item: dict[str, Any], where: str, bounds: TensorBounds
) -> tuple[str, str, tuple[int, ...]]:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise V2RequestError(f"{where} needs a non-empty string 'name'")
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise V2RequestError(f"input {name!r} needs a string 'datatype'")
    if datatype not in DATATYPES:
        raise V2RequestError(
            f"input {name!r}: unsupported datatype {datatype!r} "
            f"(one of {', '.join(sorted(DATATYPES))})"
        )
    return name, datatype, _shape(item.get("shape"), name, bounds)


def _shape(raw: Any, name: str, bounds: TensorBounds) -> tuple[int, ...]:
    if not isinstance(raw, list):
        raise V2RequestError(f"input {name!r} needs a 'shape' list")
    for dim in raw:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise V2RequestError(f"input {name!r}: shape {raw!r} must hold integers")
        if dim < 0:
            raise V2RequestError(f"input {name!r}: shape {raw!r} has a negative dimension")
    shape = tuple(raw)
    if _element_count(shape) > bounds.max_elements:
        raise V2RequestError(
            f"input {name!r}: shape {raw!r} has more than {bounds.max_elements} elements"
            f"{bounds.limit_hint}"
        )
    return shape


def _element_count(shape: tuple[int, ...]) -> int:
    if 0 in shape:
        return 0
    count = 1
    for dim in shape:
        count *= dim
        if count > MAX_ELEMENTS:  # stop early: never multiply huge numbers
            break
    return count


def _refuse_shared_memory(parameters: dict[str, Any], what: str) -> None:
    if any(key.startswith("shared_memory_") for key in parameters):
        raise V2RequestError(f"{what}: the shared-memory extension is not supported")


# JSON data


def _json_data(item: dict[str, Any], name: str, datatype: str, shape: tuple[int, ...]) -> list[Any]:
    if "data" not in item:
        raise V2RequestError(f"input {name!r} has neither 'data' nor binary_data_size")
    expected = _element_count(shape)
    flat = _flatten(item["data"], name, expected)
    if len(flat) != expected:
        found = "more" if len(flat) > expected else len(flat)
        raise V2RequestError(
            f"input {name!r}: shape {list(shape)} needs {expected} elements, 'data' has {found}"
        )
    if datatype == "BYTES":
        return _json_bytes(flat, name)
    if datatype == "BOOL":
        for index, value in enumerate(flat):
            if not isinstance(value, bool):
                raise _bad_element(name, datatype, index, value)
        return flat
    if datatype in _INT_RANGES:
        return _json_ints(flat, name, datatype)
    return _json_floats(flat, name, datatype)


def _flatten(data: Any, name: str, expected: int) -> list[Any]:
    """Row-major elements of (possibly nested) lists, without recursion; past ``expected``
    elements it stops (the caller refuses the count), so oversized data is not all read."""
    if not isinstance(data, list):
        raise V2RequestError(f"input {name!r}: 'data' must be a list")
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack and len(flat) <= expected:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
            if len(flat) > expected:
                break
        else:
            stack.pop()
    return flat


def _bad_element(name: str, datatype: str, index: int, value: Any) -> V2RequestError:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return V2RequestError(f"input {name!r}: element {index} ({shown}) is not a valid {datatype}")


def _json_bytes(flat: list[Any], name: str) -> list[Any]:
    # Kept as text: the JSON parser has already refused what is not UTF-8 (a lone surrogate).
    for index, value in enumerate(flat):
        if not isinstance(value, str):
            raise _bad_element(name, "BYTES string", index, value)
    return flat


def _json_ints(flat: list[Any], name: str, datatype: str) -> list[Any]:
    low, high = _INT_RANGES[datatype]
    for index, value in enumerate(flat):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad_element(name, datatype, index, value)
    return flat


def _json_floats(flat: list[Any], name: str, datatype: str) -> list[Any]:
    limit = _FLOAT_MAX[datatype]
    for index, value in enumerate(flat):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_element(name, datatype, index, value)
        if abs(value) > limit:  # exact even for a huge int
            raise _bad_element(name, datatype, index, value)
    # The values the datatype can hold: FP32 data reads the same in JSON and in binary.
    return np.asarray(flat, dtype=_NUMPY_DTYPES[datatype]).tolist()  # type: ignore[no-any-return]


# Binary data


def _binary_chunk(binary: memoryview, offset: int, size: Any, name: str) -> memoryview:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise V2RequestError(
            f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}"
        )
    left = len(binary) - offset
    if size > left:
        raise V2RequestError(
            f"input {name!r}: binary_data_size is {size} but only {left} bytes of binary data "
            "are left in the body"
        )
    return binary[offset : offset + size]


# struct's code (standard sizes) of each fixed-size datatype but BOOL (numpy checks its bytes
# are 0 or 1): one struct.unpack reads a tensor six times faster than numpy's frombuffer and
# tolist on the one-element tensors of a tabular row.
_STRUCT_CODES = {
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}


def _binary_data(chunk: memoryview, name: str, datatype: str, shape: tuple[int, ...]) -> list[Any]:
    count = _element_count(shape)
    if datatype == "BYTES":
        return _binary_bytes(chunk, name, count)
    dtype = _NUMPY_DTYPES[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise V2RequestError(
            f"input {name!r}: shape {list(shape)} of {datatype} needs "
            f"{count * dtype.itemsize} bytes, binary_data_size is {len(chunk)}"
        )
    if datatype != "BOOL":
        return list(struct.unpack(f"<{count}{_STRUCT_CODES[datatype]}", chunk))
    raw = np.frombuffer(chunk, dtype=np.uint8)
    if raw.size and int(raw.max()) > 1:
        raise V2RequestError(f"input {name!r}: BOOL bytes must be 0 or 1")
    return np.frombuffer(chunk, dtype=dtype).tolist()  # type: ignore[no-any-return]


def _binary_bytes(chunk: memoryview, name: str, count: int) -> list[Any]:
    out: list[Any] = []
    offset = 0
    while offset < len(chunk):
        if len(out) == count:
            raise V2RequestError(
                f"input {name!r}: the shape needs {count} BYTES elements, "
                "the binary data holds more"
            )
        if len(chunk) - offset < _LENGTH_PREFIX.size:
            raise V2RequestError(
                f"input {name!r}: BYTES element {len(out)} has a truncated 4-byte length"
            )
        (length,) = _LENGTH_PREFIX.unpack_from(chunk, offset)
        offset += _LENGTH_PREFIX.size
        if length > len(chunk) - offset:
            raise V2RequestError(
                f"input {name!r}: BYTES element {len(out)} claims {length} bytes, "
                f"only {len(chunk) - offset} are left"
            )
        out.append(bytes(chunk[offset : offset + length]))
        offset += length
    if len(out) != count:
        raise V2RequestError(
            f"input {name!r}: the shape needs {count} BYTES elements, "
            f"the binary data holds {len(out)}"
        )
    return out


# Requested outputs


def _decode_outputs(raw: Any, binary_default: bool) -> list[RequestedOutput]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise V2RequestError("'outputs' must be a list")
    outputs: list[RequestedOutput] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise V2RequestError(f"outputs[{index}] must be a JSON object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise V2RequestError(f"outputs[{index}] needs a non-empty string 'name'")
        if name in names:
            raise V2RequestError(f"output {name!r} is requested twice")
        names.add(name)
        parameters = _parameters(item, f"output {name!r}")
        _refuse_shared_memory(parameters, f"output {name!r}")
        if parameters.get("classification", 0) not in (0, None):
            raise V2RequestError(f"output {name!r}: the classification extension is not supported")
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise V2RequestError(f"output {name!r}: parameters.binary_data must be true or false")
        outputs.append(RequestedOutput(name, binary))
    return outputs


# --------------------------------------------------------------------------------------------
# Response


def encode_infer_response(
    *,
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: list[Tensor],
    request: InferenceRequest,
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length (``None`` when the body is all JSON).

    Sends the outputs the request named, in its order (all of ``outputs`` when it named none);
    each as binary data when the request asked for it. A requested output that ``outputs``
    lacks is the client's error (:class:`V2RequestError`); a malformed output tensor is the
    server's (``ValueError``).
    """
    chosen = _chosen_outputs(outputs, request)
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for tensor, binary in chosen:
        entry, chunk = _encode_output(tensor, binary)
        entries.append(entry)
        if chunk is not None:
            chunks.append(chunk)
    document: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        document["model_version"] = model_version
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = entries
    header = orjson.dumps(document)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _chosen_outputs(outputs: list[Tensor], request: InferenceRequest) -> list[tuple[Tensor, bool]]:
    if not request.outputs:
        return [(tensor, request.binary_outputs_by_default) for tensor in outputs]
    by_name = {tensor.name: tensor for tensor in outputs}
    missing = [wanted.name for wanted in request.outputs if wanted.name not in by_name]
    if missing:
        raise V2RequestError(
            f"unknown output {', '.join(map(repr, missing))} "
            f"(the model gives {', '.join(map(repr, by_name))})"
        )
    return [(by_name[wanted.name], wanted.binary) for wanted in request.outputs]


def _encode_output(tensor: Tensor, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    if tensor.datatype not in DATATYPES:
        raise ValueError(f"output {tensor.name!r}: unknown datatype {tensor.datatype!r}")
    expected = _element_count(tuple(tensor.shape))
    if len(tensor.data) != expected:
        raise ValueError(
            f"output {tensor.name!r}: shape {list(tensor.shape)} needs {expected} elements, "
            f"data has {len(tensor.data)}"
        )
    entry: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": [int(dim) for dim in tensor.shape],
    }
    parameters = dict(tensor.parameters)
    chunk: bytes | None = None
    if tensor.datatype == "BYTES":
        if binary:
            elements = [_as_bytes(value, tensor.name) for value in tensor.data]
            chunk = b"".join(_LENGTH_PREFIX.pack(len(value)) + value for value in elements)
        else:
            # Text stays text, with no round trip through bytes; bytes must be UTF-8 text.
            name = tensor.name
            entry["data"] = [
                value if type(value) is str else _as_text(_as_bytes(value, name), name)
                for value in tensor.data
            ]
    elif tensor.datatype == "FP64" and all(type(value) is float for value in tensor.data):
        # The usual output (probabilities) without numpy: its error-state context alone
        # costs more than packing a few floats.
        if binary:
            chunk = struct.pack(f"<{len(tensor.data)}d", *tensor.data)
        else:
            entry["data"] = list(tensor.data)
    else:
        with np.errstate(all="ignore"):
            array = np.asarray(tensor.data, dtype=_NUMPY_DTYPES[tensor.datatype])
        if binary:
            chunk = array.tobytes()
        else:
            entry["data"] = array.tolist()
    if chunk is not None:
        parameters["binary_data_size"] = len(chunk)
    if parameters:
        entry["parameters"] = parameters
    return entry, chunk


def _as_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(f"output {name!r}: BYTES element {value!r} is neither bytes nor str")


def _as_text(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(
            f"output {name!r}: a BYTES element is not UTF-8, so it can only be sent as binary"
        ) from None
