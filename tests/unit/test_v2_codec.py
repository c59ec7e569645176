"""The V2 (Open Inference Protocol) wire codec against the real Triton HTTP client.

Request bodies are built by ``tritonclient.http`` itself (``InferInput.set_data_from_numpy``,
``InferRequestedOutput``, ``InferenceServerClient.generate_request_body``), and responses are
read back by ``InferResult.from_response_body``, so the codec is checked against what a real
client sends and reads, not against our reading of the protocol text.
"""

from __future__ import annotations

import json
import random
import re
import struct
import time
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from serving import v2_codec
from serving.v2_codec import (
    DATATYPES,
    MAX_ELEMENTS,
    InferenceRequest,
    InputTensor,
    RequestedOutput,
    Tensor,
    TensorBounds,
    V2RequestError,
    decode_infer_request,
    decode_with_full_checks,
    encode_infer_response,
    parse_header_length,
)

ARRAYS: dict[str, np.ndarray] = {
    "INT64": np.array([41, -7, 2**62], dtype=np.int64),
    "INT32": np.array([0, -(2**31), 2**31 - 1], dtype=np.int32),
    "FP64": np.array([1 / 3, 0.1, 5e-324], dtype=np.float64),
    "FP32": np.array([0.1, -2.5, 3.4e38], dtype=np.float32),
    "BYTES": np.array(["Travel_Rarely".encode(), "é".encode(), b""], dtype=np.object_),
    "BOOL": np.array([True, False, True], dtype=np.bool_),
}


def request_body(inputs: list[Any], **kwargs: Any) -> tuple[bytes, int | None]:
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, **kwargs)
    return bytes(body), json_size


def triton_input(name: str, array: np.ndarray, binary: bool) -> Any:
    datatype = "BYTES" if array.dtype == np.object_ else triton.np_to_triton_dtype(array.dtype)
    tensor = triton.InferInput(name, list(array.shape), datatype)
    return tensor.set_data_from_numpy(array, binary_data=binary)


def expected_data(array: np.ndarray, binary: bool = True) -> list[Any]:
    """The decoded elements: BYTES as bytes in binary mode, as text when they came as JSON."""
    if array.dtype != np.object_:
        return array.flatten().tolist()
    return list(array.flatten()) if binary else [value.decode() for value in array.flatten()]


def plain(request: InferenceRequest) -> list[tuple[Any, ...]]:
    """The inputs as values, whichever path (quick or full) decoded them."""
    return [(t.name, t.datatype, t.shape, t.data, t.parameters) for t in request.inputs]


def decode_one(array: np.ndarray, binary: bool) -> InputTensor:
    body, json_size = request_body([triton_input("x", array, binary)])
    request = decode_infer_request(body, json_size)
    assert len(request.inputs) == 1
    return request.inputs[0]


# --------------------------------------------------------------------------------------------
# Requests tritonclient builds


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("column", [False, True], ids=["[N]", "[N,1]"])
@pytest.mark.parametrize("datatype", sorted(ARRAYS))
def test_each_datatype_decodes_from_the_real_client(
    datatype: str, column: bool, binary: bool
) -> None:
    array = ARRAYS[datatype].reshape(-1, 1) if column else ARRAYS[datatype]
    tensor = decode_one(array, binary)
    assert tensor.name == "x"
    assert tensor.datatype == datatype
    assert tensor.shape == array.shape
    assert tensor.data == expected_data(array, binary)
    assert tensor.parameters == {}  # binary_data_size is transport, not the tensor's
    text_type = bytes if binary else str
    element_type = {"BYTES": text_type, "BOOL": bool, "FP64": float, "FP32": float}.get(
        datatype, int
    )
    assert all(type(value) is element_type for value in tensor.data)


def test_fp64_keeps_every_bit_and_fp32_reads_the_same_in_both_modes() -> None:
    fp64 = np.array([1 / 3, 0.1, 2**-1074, 1.7976931348623157e308, -0.0], dtype=np.float64)
    for binary in (False, True):
        data = decode_one(fp64, binary).data
        assert np.array(data, dtype=np.float64).tobytes() == fp64.tobytes()
    fp32 = np.array([0.1, 1 / 3], dtype=np.float32)
    assert decode_one(fp32, False).data == decode_one(fp32, True).data == fp32.tolist()


def test_other_fixed_size_datatypes_in_binary_mode() -> None:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.float16):
        array = np.array([0, 1, 7], dtype=dtype)
        tensor = decode_one(array, True)
        assert tensor.datatype == triton.np_to_triton_dtype(array.dtype)
        assert tensor.data == array.tolist()


def test_a_request_mixing_binary_and_json_inputs_keeps_their_order() -> None:
    age = np.array([[30], [45]], dtype=np.int64)
    travel = np.array([[b"Non-Travel"], [b"Travel_Rarely"]], dtype=np.object_)
    score = np.array([[0.5], [1.25]], dtype=np.float64)
    body, json_size = request_body(
        [
            triton_input("Age", age, True),
            triton_input("BusinessTravel", travel, False),
            triton_input("Score", score, True),
        ],
        request_id="req-7",
    )
    assert json_size is not None and json_size < len(body)
    request = decode_infer_request(body, json_size)
    assert [t.name for t in request.inputs] == ["Age", "BusinessTravel", "Score"]
    assert request.inputs[0].data == [30, 45]
    assert request.inputs[1].data == ["Non-Travel", "Travel_Rarely"]  # JSON: text
    assert request.inputs[2].data == [0.5, 1.25]
    assert request.id == "req-7"


def test_all_json_request_has_no_header_length() -> None:
    body, json_size = request_body([triton_input("x", ARRAYS["INT64"], False)])
    assert json_size is None
    request = decode_infer_request(body, None)
    assert request.inputs[0].data == ARRAYS["INT64"].tolist()
    assert request.id is None
    # The header may also be given when the body is all JSON: it is then the whole body.
    assert plain(decode_infer_request(body, len(body))) == plain(request)


def test_without_outputs_tritonclient_asks_for_every_output_in_binary() -> None:
    body, json_size = request_body([triton_input("x", ARRAYS["INT64"], False)])
    request = decode_infer_request(body, json_size)
    assert request.outputs == []
    assert request.binary_outputs_by_default is True
    assert request.parameters == {"binary_data_output": True}


def test_requested_outputs_carry_their_own_binary_flag() -> None:
    body, json_size = request_body(
        [triton_input("x", ARRAYS["INT64"], False)],
        outputs=[
            triton.InferRequestedOutput("label", binary_data=False),
            triton.InferRequestedOutput("probabilities"),
        ],  # binary_data=True by default
        parameters={"threshold": 0.7},
    )
    request = decode_infer_request(body, json_size)
    assert request.outputs == [
        RequestedOutput("label", False),
        RequestedOutput("probabilities", True),
    ]
    assert request.binary_outputs_by_default is False  # not sent once outputs are named
    assert request.parameters == {"threshold": 0.7}


def test_request_level_binary_data_output_is_the_default_of_unflagged_outputs() -> None:
    body = json.dumps(
        {
            "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}],
            "outputs": [
                {"name": "label"},
                {"name": "probabilities", "parameters": {"binary_data": False}},
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    request = decode_infer_request(body, None)
    assert request.outputs == [
        RequestedOutput("label", True),
        RequestedOutput("probabilities", False),
    ]


def test_json_data_may_be_nested_in_rows() -> None:
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1.5, 2], [3, 4.25]]},
                {"name": "s", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]},
            ]
        }
    ).encode()
    x, s = decode_infer_request(body, None).inputs
    assert x.data == [1.5, 2.0, 3.0, 4.25] and x.shape == (2, 2)
    assert s.data == ["a", "b"]


def test_empty_tensors() -> None:
    for binary in (False, True):
        tensor = decode_one(np.zeros((0, 3), dtype=np.int64), binary)
        assert tensor.shape == (0, 3) and tensor.data == []
    assert decode_one(np.array([], dtype=np.object_), True).data == []


def test_datatypes_are_the_protocol_ones() -> None:
    assert DATATYPES == {
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


# --------------------------------------------------------------------------------------------
# Refusals


def json_request(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def one_input(**fields: Any) -> bytes:
    tensor = {"name": "age", "shape": [2], "datatype": "INT64", "data": [1, 2]}
    tensor.update(fields)
    return json_request({k: v for k, v in tensor.items() if v is not None})


def binary_request(array: np.ndarray) -> tuple[bytes, int]:
    body, json_size = request_body([triton_input("age", array, True)])
    assert json_size is not None
    return body, json_size


def with_binary_size(size: Any, array: np.ndarray) -> tuple[bytes, int]:
    """A tritonclient binary body whose binary_data_size is replaced by ``size``."""
    body, json_size = binary_request(array)
    header = json.loads(body[:json_size])
    header["inputs"][0]["parameters"]["binary_data_size"] = size
    new_header = json.dumps(header).encode()
    return new_header + body[json_size:], len(new_header)


def refused(body: bytes, header_length: int | None = None) -> str:
    with pytest.raises(V2RequestError) as caught:
        decode_infer_request(body, header_length)
    return str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"outputs": []}', "needs an 'inputs' list"),
        (b'{"inputs": {"name": "x"}}', "needs an 'inputs' list"),
        (b'{"inputs": []}', "'inputs' is empty"),
        (b'{"inputs": [3]}', "inputs[0] must be a JSON object"),
        (b'{"id": 5, "inputs": []}', "'id' must be a string"),
        (b'{"parameters": [], "inputs": []}', "parameters of the request must be a JSON object"),
        (
            b'{"parameters": {"binary_data_output": "yes"}, "inputs": []}',
            "binary_data_output must be true or false",
        ),
    ],
)
def test_malformed_documents(body: bytes, message: str) -> None:
    assert message in refused(body)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "inputs[0] needs a non-empty string 'name'"),
        ({"datatype": "BF16"}, "input 'age': unsupported datatype 'BF16'"),
        ({"datatype": None}, "input 'age' needs a string 'datatype'"),
        ({"shape": None}, "input 'age' needs a 'shape' list"),
        ({"shape": [-1, 2]}, "input 'age': shape [-1, 2] has a negative dimension"),
        ({"shape": [2.0]}, "must hold integers"),
        ({"shape": [True]}, "must hold integers"),
        ({"shape": [2**16, 2**16]}, f"has more than {MAX_ELEMENTS} elements"),
        ({"shape": [2**62, 2**62, 2**62, 0]}, "'data' has more"),  # zero elements: not absurd
        ({"shape": [3]}, "input 'age': shape [3] needs 3 elements, 'data' has 2"),
        ({"shape": [2, 1], "data": [[1], [2], [3]]}, "needs 2 elements, 'data' has more"),
        ({"data": None}, "input 'age' has neither 'data' nor binary_data_size"),
        ({"data": 5}, "'data' must be a list"),
        ({"data": [1, "x"]}, "input 'age': element 1 ('x') is not a valid INT64"),
        ({"data": [1, 2.5]}, "element 1 (2.5) is not a valid INT64"),
        ({"data": [True, 2]}, "element 0 (True) is not a valid INT64"),
        ({"data": [1, None]}, "element 1 (None) is not a valid INT64"),
        ({"data": [1, 2**64]}, "element 1"),  # orjson reads it as a float
        ({"datatype": "INT32", "data": [1, 2**31]}, "element 1 (2147483648) is not a valid INT32"),
        ({"datatype": "UINT8", "data": [-1, 2]}, "element 0 (-1) is not a valid UINT8"),
        ({"datatype": "FP64", "data": [1.5, "2"]}, "element 1 ('2') is not a valid FP64"),
        ({"datatype": "FP32", "data": [1.5, 1e39]}, "element 1 (1e+39) is not a valid FP32"),
        ({"datatype": "FP16", "data": [1.5, 70000]}, "element 1 (70000) is not a valid FP16"),
        ({"datatype": "BOOL", "data": [True, 1]}, "element 1 (1) is not a valid BOOL"),
        ({"datatype": "BYTES", "data": ["a", 3]}, "element 1 (3) is not a valid BYTES string"),
        ({"datatype": "BYTES", "data": ["a", "\ud800"]}, "not valid JSON"),  # a lone surrogate
        ({"data": ["x" * 100, 1]}, "element 0 ('xxxxxxxxx"),
        ({"parameters": "big"}, "parameters of input 'age' must be a JSON object"),
        ({"parameters": {"shared_memory_region": "r"}}, "shared-memory extension is not supported"),
    ],
)
def test_bad_inputs_are_refused_with_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    assert message in refused(one_input(**fields))


MODEL_BOUNDS = TensorBounds(inputs=2, max_elements=3, limit_hint=" (MAX_BATCH_ROWS)")


def bounded_refusal(body: bytes, header_length: int | None = None) -> str:
    with pytest.raises(V2RequestError) as caught:
        decode_infer_request(body, header_length, MODEL_BOUNDS)
    return str(caught.value)


def test_a_request_within_the_models_bounds_is_decoded() -> None:
    body = json_request(
        {"name": "a", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]},
        {"name": "b", "shape": [3, 1], "datatype": "BYTES", "data": [["x"], ["y"], ["z"]]},
    )
    assert [t.name for t in decode_infer_request(body, None, MODEL_BOUNDS).inputs] == ["a", "b"]


def test_more_than_twice_the_inputs_the_model_takes_are_refused_before_decoding() -> None:
    tensors = [{"name": n, "shape": [1], "datatype": "INT64", "data": [1]} for n in "abcde"]
    # Four pass: the model's own checks then name the unknown ones.
    assert len(decode_infer_request(json_request(*tensors[:4]), None, MODEL_BOUNDS).inputs) == 4
    assert bounded_refusal(json_request(*tensors)) == (
        "the request has 5 inputs; this model takes 2 (see its metadata for their names)"
    )


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "a", "shape": [4], "datatype": "INT64", "data": [1, 2, 3, 4]},  # quick path
        {"name": "a", "shape": [4, 1], "datatype": "INT64", "data": [[1], [2], [3], [4]]},
        {"name": "a", "shape": [2, 2], "datatype": "BYTES", "data": [["a", "b"], ["c", "d"]]},
    ],
)
def test_more_elements_than_the_model_takes_are_refused_naming_the_limit(
    tensor: dict[str, Any],
) -> None:
    message = bounded_refusal(json_request(tensor))
    assert (
        message == f"input 'a': shape {tensor['shape']} has more than 3 elements (MAX_BATCH_ROWS)"
    )


def test_binary_bytes_past_the_bounds_are_refused_without_reading_them() -> None:
    count = 2_500_000  # 10 MB of empty elements: seconds of Python to read one by one
    binary = struct.pack("<I", 0) * count
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "datatype": "BYTES",
                    "shape": [count],
                    "parameters": {"binary_data_size": len(binary)},
                }
            ]
        }
    ).encode()
    # Refused on its shape, before its data is read.
    message = bounded_refusal(header + binary, len(header))
    assert message == f"input 'a': shape [{count}] has more than 3 elements (MAX_BATCH_ROWS)"


def test_nested_data_longer_than_its_shape_is_not_read_to_its_end() -> None:
    tensor = {"name": "a", "shape": [2, 1], "datatype": "INT64", "data": [[1]] * 2_000_000}
    message = bounded_refusal(json_request(tensor))
    # "more", not 2,000,000: the walk stopped at the third element.
    assert message == "input 'a': shape [2, 1] needs 2 elements, 'data' has more"


def test_duplicate_input_names() -> None:
    x = triton_input("x", ARRAYS["INT64"], False)
    body, json_size = request_body([x, x])
    assert "input 'x' is given twice" in refused(body, json_size)


def test_long_messages_are_shortened() -> None:
    message = refused(one_input(data=[1, "y" * 10_000]))
    assert len(message) < 120


def test_shared_memory_input_from_tritonclient() -> None:
    tensor = triton.InferInput("x", [3], "INT64")
    tensor.set_shared_memory("region", 24)
    body, json_size = request_body([tensor])
    assert "shared-memory extension is not supported" in refused(body, json_size)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({}, "'outputs' must be a list"),
        ([5], "outputs[0] must be a JSON object"),
        ([{"name": 5}], "outputs[0] needs a non-empty string 'name'"),
        ([{"name": "a"}, {"name": "a"}], "output 'a' is requested twice"),
        ([{"name": "a", "parameters": {"binary_data": 1}}], "binary_data must be true or false"),
        ([{"name": "a", "parameters": 1}], "parameters of output 'a' must be a JSON object"),
    ],
)
def test_bad_requested_outputs(outputs: Any, message: str) -> None:
    body = json_request(
        {"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}, outputs=outputs
    )
    assert message in refused(body)


def test_extensions_of_outputs_that_are_not_supported() -> None:
    x = triton_input("x", ARRAYS["INT64"], False)
    body, size = request_body([x], outputs=[triton.InferRequestedOutput("p", class_count=2)])
    assert "classification extension is not supported" in refused(body, size)
    shared = triton.InferRequestedOutput("p")
    shared.set_shared_memory("region", 64)
    body, size = request_body([x], outputs=[shared])
    assert "shared-memory extension is not supported" in refused(body, size)


def test_header_length_that_does_not_fit_the_body() -> None:
    body, json_size = binary_request(ARRAYS["INT64"])
    assert "must be positive, got -3" in refused(body, -3)
    assert "must be positive, got 0" in refused(body, 0)
    assert f"is {len(body) + 1} but the body has only {len(body)} bytes" in refused(
        body, len(body) + 1
    )
    assert "not valid JSON" in refused(body, json_size - 1)  # cut inside the JSON
    assert "not valid JSON" in refused(body, json_size + 1)  # binary read as JSON
    assert "no Inference-Header-Content-Length" in refused(body[:json_size], None)
    assert "must be an integer" in refused(body, True)  # type: ignore[arg-type]


def test_binary_sizes_that_do_not_add_up() -> None:
    body, json_size = binary_request(ARRAYS["INT64"])  # 24 bytes of binary data
    assert "binary_data_size is 24 but only 23 bytes" in refused(body[:-1], json_size)
    assert (
        "1 bytes after the binary data of the inputs (their binary_data_size add up to 24)"
        in refused(body + b"\0", json_size)
    )
    assert "shape [3] of INT64 needs 24 bytes, binary_data_size is 16" in refused(
        *with_binary_size(16, ARRAYS["INT64"])
    )
    for size in (-1, "24", 2.5, True):
        assert "binary_data_size must be a non-negative integer" in refused(
            *with_binary_size(size, ARRAYS["INT64"])
        )


def test_both_json_data_and_binary_data() -> None:
    body, json_size = binary_request(ARRAYS["INT64"])
    header = json.loads(body[:json_size])
    header["inputs"][0]["data"] = [1, 2, 3]
    new_header = json.dumps(header).encode()
    assert "has both 'data' and binary_data_size" in refused(
        new_header + body[json_size:], len(new_header)
    )


def test_bool_bytes_must_be_0_or_1() -> None:
    body, json_size = binary_request(ARRAYS["BOOL"])
    assert "BOOL bytes must be 0 or 1" in refused(body[:-1] + b"\x02", json_size)


def test_bytes_elements_that_do_not_add_up() -> None:
    array = np.array([b"ab", b"c"], dtype=np.object_)  # 4+2 + 4+1 = 11 bytes
    body, json_size = binary_request(array)
    binary = body[json_size:]
    assert binary == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c"

    def with_binary(data: bytes) -> str:
        header = json.loads(body[:json_size])
        header["inputs"][0]["parameters"]["binary_data_size"] = len(data)
        new_header = json.dumps(header).encode()
        return refused(new_header + data, len(new_header))

    assert "BYTES element 1 has a truncated 4-byte length" in with_binary(binary[:6] + b"\1\0")
    assert "BYTES element 1 claims 1 bytes, only 0 are left" in with_binary(binary[:-1])
    assert "BYTES element 0 claims 4294967295 bytes" in with_binary(b"\xff" * 4 + binary)
    assert "needs 2 BYTES elements, the binary data holds 1" in with_binary(binary[:6])
    assert "needs 2 BYTES elements, the binary data holds more" in with_binary(
        binary + struct.pack("<I", 0)
    )


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("0", 0), (" 312 ", 312)])
def test_parse_header_length(value: str | None, expected: int | None) -> None:
    assert parse_header_length(value) == expected


@pytest.mark.parametrize("value", ["", "-5", "+5", "1_0", "12a", "1e3", "²", "9" * 19])
def test_parse_header_length_refuses(value: str) -> None:
    with pytest.raises(V2RequestError, match="must be a non-negative integer"):
        parse_header_length(value)


# --------------------------------------------------------------------------------------------
# Fuzzing: whatever the bytes, the only error is V2RequestError


def _random_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            3,
            2**31,
            2**63,
            2**64,
            -(2**70),
            1.5,
            -0.0,
            1e308,
            "",
            "x",
            "INT64",
            "BYTES",
            "binary_data_size",
            [],
            [1, 2],
            [[1], ["a"]],
            {},
            {"a": 1},
            {"binary_data_size": 3},
            {"binary_data": True},
            [2**40, 2**40],
        ]
    )


def _mutate(node: Any, rng: random.Random) -> Any:
    """Replace one random node of a JSON document (its root included) by a random value."""
    if rng.random() < 0.25 or not isinstance(node, (dict, list)) or not node:
        return _random_value(rng)
    if isinstance(node, dict):
        key = rng.choice(list(node))
        if rng.random() < 0.1:
            return {k: v for k, v in node.items() if k != key}
        return {**node, key: _mutate(node[key], rng)}
    index = rng.randrange(len(node))
    return [*node[:index], _mutate(node[index], rng), *node[index + 1 :]]


def _seed_bodies() -> list[tuple[bytes, int | None]]:
    seeds = [
        request_body(
            [triton_input(name, array, binary) for name, array in ARRAYS.items()],
            outputs=[triton.InferRequestedOutput("label", binary_data=False)],
            request_id="r",
        )
        for binary in (False, True)
    ]
    return [(body, size) for body, size in seeds]


def _fuzz_case(rng: random.Random, seeds: list[tuple[bytes, int | None]]) -> tuple[bytes, Any]:
    body, size = rng.choice(seeds)
    kind = rng.randrange(4)
    if kind == 0:  # random bytes, random header length
        data = rng.randbytes(rng.randrange(64))
        return data, rng.choice([None, -1, 0, len(data), rng.randrange(len(data) + 2)])
    if kind == 1:  # a valid body with a few bytes flipped or cut
        data = bytearray(body)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data[: rng.randrange(len(data) + 1)]), size
    header_size = size if size is not None else len(body)
    header = _mutate(json.loads(body[:header_size]), rng)
    new_header = json.dumps(header).encode()
    binary = body[header_size:]
    if kind == 3 and binary:
        binary = binary[: rng.randrange(len(binary))] + rng.randbytes(rng.randrange(8))
    return new_header + binary, len(new_header) if binary or rng.random() < 0.5 else None


def test_fuzz_never_raises_anything_but_v2_request_error() -> None:
    rng = random.Random(20240601)
    seeds = _seed_bodies()
    deadline = time.monotonic() + 1.5
    cases = decoded = 0
    while time.monotonic() < deadline:
        body, header_length = _fuzz_case(rng, seeds)
        cases += 1
        try:
            decode_infer_request(body, header_length)
            decoded += 1
        except V2RequestError as error:
            assert str(error)
    assert cases > 500
    assert decoded > 0  # some mutations stay valid: the fuzzer does reach past the checks


def _quick_path_seeds() -> list[tuple[bytes, int | None]]:
    """Requests the quick paths take: every input JSON (BYTES, INT64, INT32 or FP64), or
    every input binary (any datatype but BOOL); and the requests of ``_seed_bodies``."""
    binary = {name: array for name, array in ARRAYS.items() if name != "BOOL"}
    binary["FP16"] = np.array([0.5, -2.0, 65504.0], dtype=np.float16)
    binary["UINT64"] = np.array([0, 1, 2**64 - 1], dtype=np.uint64)
    json_only = {name: array for name, array in binary.items() if name in _QUICK_JSON}
    seeds = []
    for is_binary, arrays in ((False, json_only), (True, binary)):
        for shaped in (arrays, {name: a.reshape(-1, 1) for name, a in arrays.items()}):
            inputs = [triton_input(name, array, is_binary) for name, array in shaped.items()]
            seeds.append(request_body(inputs))
            outputs = [triton.InferRequestedOutput("label")]
            seeds.append(request_body(inputs, request_id="r", outputs=outputs))
            seeds.append(request_body(inputs[:2]))  # within a bound on inputs, not on rows
            two_rows = [triton_input(n, a[:2], is_binary) for n, a in list(shaped.items())[:2]]
            seeds.append(request_body(two_rows))  # within both
    return seeds + _seed_bodies()


_QUICK_JSON = ("BYTES", "INT64", "INT32", "FP64")


def _odd_headers(seeds: list[tuple[bytes, int | None]]) -> list[tuple[bytes, int | None]]:
    """Each seed with something in its JSON header that parsers may read differently: an
    unknown field (holding invalid UTF-8, or a number past FP64), and parameters past
    64-bit integers or FP64, nested, or in an output."""
    additions = [
        b'"zz":"\xff",',
        b'"zz":1e400,',
        b'"zz":{"a":[1]},',
        b'"parameters":{"k":1180591620717411303424},',
        b'"parameters":{"k":18446744073709551615},',
        b'"parameters":{"k":-1e400},',
        b'"parameters":{"k":{"nested":true}},',
        b'"outputs":[{"name":"label","parameters":{"binary_data":false,"k":1e400}}],',
    ]
    odd = []
    for body, header_length in seeds:
        for addition in additions:
            changed = b"{" + addition + body[1:]
            odd.append((changed, None if header_length is None else header_length + len(addition)))
    return odd


def _outcome(decode: Any, body: bytes, header_length: Any, bounds: TensorBounds) -> str:
    """What a decoder makes of a body, written out: the refusal, or every decoded value."""
    try:
        request = decode(body, header_length, bounds)
    except V2RequestError as error:
        return f"refused: {error}"
    # repr: NaN equals NaN, and -0.0 and 0.0, int and float, bytes and str differ.
    return repr(
        (
            plain(request),
            request.id,
            request.outputs,
            request.binary_outputs_by_default,
            request.parameters,
        )
    )


@pytest.mark.parametrize(
    "bounds",
    [
        TensorBounds(),
        TensorBounds(inputs=6, max_elements=3, limit_hint=" (MAX_BATCH_ROWS)"),
        TensorBounds(inputs=2, max_elements=3, limit_hint=" (MAX_BATCH_ROWS)"),
        TensorBounds(inputs=3, max_elements=2, limit_hint=" (MAX_BATCH_ROWS)"),
    ],
    ids=["no bounds", "bounds the seeds fit", "fewer inputs", "fewer rows"],
)
def test_the_quick_paths_decode_and_refuse_exactly_as_the_full_checks(
    bounds: TensorBounds,
) -> None:
    rng = random.Random(20261201)
    seeds = _quick_path_seeds()
    cases: list[tuple[bytes, Any]] = [*seeds, *_odd_headers(seeds)]
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        cases.append(_fuzz_case(rng, seeds))
    quick = {"json": 0, "binary": 0}
    for body, header_length in cases:
        expected = _outcome(decode_with_full_checks, body, header_length, bounds)
        assert _outcome(decode_infer_request, body, header_length, bounds) == expected
        if header_length is None:
            quick["json"] += v2_codec._quick_request(body, bounds) is not None
        elif type(header_length) is int:
            binary = v2_codec._quick_binary_request(body, header_length, bounds)
            quick["binary"] += binary is not None
    assert len(cases) > 500
    assert min(quick.values()) > 10  # both quick paths were taken, not only the full checks


def _one_row_binary_seeds() -> list[tuple[bytes, int]]:
    """Binary requests of one row (each BYTES input a single element, read in the one
    unpack of a kept header), of none, and of a BOOL input (read alone)."""
    arrays = {name: array[:1] for name, array in ARRAYS.items() if name != "BOOL"}
    seeds = [
        request_body([triton_input(name, array, True) for name, array in arrays.items()]),
        request_body([triton_input(name, array[:0], True) for name, array in arrays.items()]),
        request_body([triton_input(n, ARRAYS[n][:1], True) for n in ("BOOL", "BYTES")]),
    ]
    return [(body, size) for body, size in seeds if size is not None]


def test_a_kept_binary_header_reads_any_data_after_it_as_the_full_checks_do() -> None:
    # The quick path reads a header once and keeps what it says; every byte of the data
    # after it (a BYTES length among them) still decides, as in the full checks.
    bounds = TensorBounds()
    cases = []
    for body, header_length in _one_row_binary_seeds():
        cases += [(body, header_length), (body[:-1], header_length), (body + b"\0", header_length)]
        header, data = body[:header_length], body[header_length:]
        # Too small for a BYTES length or a number; past any body, or than struct can read.
        for size in (0, 3, 4, 9, 2**62, 2**63):
            for match in re.finditer(rb'"binary_data_size":\d+', header):
                odd = header[: match.start()] + b'"binary_data_size":%d' % size
                odd += header[match.end() :]
                cases.append((odd + data, len(odd)))
            odd = re.sub(rb'"binary_data_size":\d+', b'"binary_data_size":%d' % size, header)
            cases.append((odd + data, len(odd)))
        for index in range(header_length, len(body)):
            for value in (0, 1, 0x80, 0xFF, body[index] ^ 0x01):
                changed = bytearray(body)
                changed[index] = value
                cases.append((bytes(changed), header_length))
    v2_codec._kept_binary_layout.cache_clear()
    for body, header_length in cases:
        expected = _outcome(decode_with_full_checks, body, header_length, bounds)
        assert _outcome(decode_infer_request, body, header_length, bounds) == expected
    kept = v2_codec._kept_binary_layout.cache_info()
    headers = {body[:header_length] for body, header_length in cases if len(body) >= header_length}
    whole_headers = sum(len(body) >= header_length for body, header_length in cases)
    assert kept.misses == len(headers) and kept.hits == whole_headers - len(headers)
    assert sum(_outcome(decode_infer_request, *c, bounds).startswith("refused") for c in cases)


def test_inputs_read_alone_keep_the_header_of_any_input_order() -> None:
    # A BOOL input, or BYTES of several elements, is read alone: with the inputs after it.
    two_rows = {name: ARRAYS[name][:2] for name in ("BYTES", "BOOL", "FP64", "INT64")}
    body, header_length = request_body([triton_input(n, a, True) for n, a in two_rows.items()])
    assert header_length is not None
    layout = v2_codec._binary_layout(body[:header_length], TensorBounds())
    assert layout is not None and layout.reader is None
    request = decode_infer_request(body, header_length)
    assert plain(request) == plain(decode_with_full_checks(body, header_length))


def test_a_long_binary_header_is_read_every_time_and_not_kept() -> None:
    long_name = "x" * (v2_codec._MAX_KEPT_HEADER + 1)
    body, header_length = request_body([triton_input(long_name, ARRAYS["INT64"], True)])
    assert header_length is not None
    v2_codec._kept_binary_layout.cache_clear()
    request = decode_infer_request(body, header_length)
    assert request.inputs[0].data == expected_data(ARRAYS["INT64"])
    assert v2_codec._kept_binary_layout.cache_info().currsize == 0


# --------------------------------------------------------------------------------------------
# Responses, read back by tritonclient

LABELS = Tensor("label", "BYTES", (3,), [b"Yes", "No", "Peut-\u00eatre"])
PROBABILITIES = Tensor("probabilities", "FP64", (3, 1), [1 / 3, 0.1, 2**-1074])
CLASSES = Tensor("class_id", "INT64", (3,), [1, 0, 2**62])


def decoded_request(outputs: list[Any] | None = None, **kwargs: Any) -> InferenceRequest:
    body, json_size = request_body(
        [triton_input("x", ARRAYS["INT64"], False)], outputs=outputs, **kwargs
    )
    return decode_infer_request(body, json_size)


def read_back(
    request: InferenceRequest, outputs: list[Tensor] | None = None, request_id: str | None = "r-1"
) -> tuple[Any, bytes, int | None]:
    body, header_length = encode_infer_response(
        model_name="employee-attrition",
        model_version="3",
        request_id=request_id,
        outputs=[LABELS, PROBABILITIES, CLASSES] if outputs is None else outputs,
        request=request,
    )
    result = triton.InferResult.from_response_body(body, header_length=header_length)
    return result, body, header_length


def assert_outputs(result: Any, text_labels: bool) -> None:
    labels = result.as_numpy("label")
    assert labels.dtype == np.object_ and labels.shape == (3,)
    expected = ["Yes", "No", "Peut-\u00eatre"]
    assert labels.tolist() == (expected if text_labels else [s.encode() for s in expected])
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float64 and probabilities.shape == (3, 1)
    assert probabilities.tobytes() == np.array(PROBABILITIES.data).tobytes()  # every bit
    assert result.as_numpy("class_id").tolist() == [1, 0, 2**62]


def test_default_request_from_tritonclient_gets_every_output_in_binary() -> None:
    result, body, header_length = read_back(decoded_request())
    assert header_length is not None and header_length < len(body)
    assert_outputs(result, text_labels=False)  # binary BYTES come back as bytes
    response = result.get_response()
    assert response["model_name"] == "employee-attrition"
    assert response["model_version"] == "3" and response["id"] == "r-1"
    assert [o["parameters"]["binary_data_size"] for o in response["outputs"]] == [
        4 + 3 + 4 + 2 + 4 + 10,
        24,
        24,
    ]


def test_json_outputs_and_header_length_none() -> None:
    outputs = [
        triton.InferRequestedOutput(name, binary_data=False)
        for name in ("label", "probabilities", "class_id")
    ]
    result, body, header_length = read_back(decoded_request(outputs))
    assert header_length is None
    assert_outputs(result, text_labels=True)  # JSON BYTES come back as str
    document = json.loads(body)
    assert document["outputs"][0] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [3],
        "data": ["Yes", "No", "Peut-\u00eatre"],
    }


def test_mixed_output_modes_in_the_requested_order() -> None:
    outputs = [
        triton.InferRequestedOutput("probabilities", binary_data=True),
        triton.InferRequestedOutput("label", binary_data=False),
    ]
    result, _, header_length = read_back(decoded_request(outputs))
    assert header_length is not None
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["probabilities", "label"]
    assert "data" in response["outputs"][1] and "data" not in response["outputs"][0]
    assert result.as_numpy("label").tolist() == ["Yes", "No", "Peut-\u00eatre"]
    assert result.as_numpy("probabilities").tobytes() == np.array(PROBABILITIES.data).tobytes()
    assert result.as_numpy("class_id") is None  # not requested, not sent


def test_every_output_as_json_when_no_output_is_named_nor_binary_asked() -> None:
    body = json_request({"name": "x", "shape": [1], "datatype": "INT64", "data": [1]})
    result, _, header_length = read_back(decode_infer_request(body, None), request_id=None)
    assert header_length is None
    assert_outputs(result, text_labels=True)
    assert "id" not in result.get_response()


def test_output_datatypes_round_trip_in_both_modes() -> None:
    tensors = [
        Tensor(f"o{i}", datatype, tuple(array.shape), expected_data(array))
        for i, (datatype, array) in enumerate(sorted(ARRAYS.items()))
    ]
    tensors.append(Tensor("half", "FP16", (2, 1), [0.5, -2.0]))
    for binary in (False, True):
        request = InferenceRequest(None, [], [], binary, {})
        result, _, _ = read_back(request, tensors)
        for tensor in tensors:
            array = result.as_numpy(tensor.name)
            assert array.shape == tensor.shape
            if tensor.datatype == "BYTES":
                values = [v.encode() if isinstance(v, str) else v for v in array.tolist()]
                assert values == tensor.data
            else:
                assert triton.np_to_triton_dtype(array.dtype) == tensor.datatype
                assert array.flatten().tolist() == tensor.data


def test_numpy_values_and_parameters_in_outputs() -> None:
    request = InferenceRequest(None, [], [], False, {})
    tensor = Tensor("class_id", "INT64", (2,), list(np.array([3, 4])), {"content_type": "np"})
    body, header_length = encode_infer_response(
        model_name="m", model_version=None, request_id=None, outputs=[tensor], request=request
    )
    assert header_length is None
    assert json.loads(body) == {
        "model_name": "m",
        "outputs": [
            {
                "name": "class_id",
                "datatype": "INT64",
                "shape": [2],
                "data": [3, 4],
                "parameters": {"content_type": "np"},
            }
        ],
    }


def test_nan_has_no_json_form_and_goes_out_as_null() -> None:
    request = InferenceRequest(None, [], [], False, {})
    body, _ = encode_infer_response(
        model_name="m",
        model_version=None,
        request_id=None,
        outputs=[Tensor("p", "FP64", (1,), [float("nan")])],
        request=request,
    )
    assert json.loads(body)["outputs"][0]["data"] == [None]


def test_an_unknown_requested_output_is_the_clients_error() -> None:
    request = decoded_request([triton.InferRequestedOutput("score")])
    with pytest.raises(V2RequestError, match="unknown output 'score'"):
        read_back(request)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (Tensor("p", "FLOAT", (1,), [1.0]), "unknown datatype 'FLOAT'"),
        (Tensor("p", "FP64", (2,), [1.0]), "shape [2] needs 2 elements, data has 1"),
        (Tensor("p", "BYTES", (1,), [3]), "neither bytes nor str"),
        (Tensor("p", "BYTES", (1,), [b"\xff"]), "not UTF-8"),
    ],
)
def test_a_malformed_output_is_the_servers_error(tensor: Tensor, message: str) -> None:
    request = InferenceRequest(None, [], [], False, {})
    with pytest.raises(ValueError) as caught:
        encode_infer_response(
            model_name="m", model_version=None, request_id=None, outputs=[tensor], request=request
        )
    assert message in str(caught.value)
    assert not isinstance(caught.value, V2RequestError)
