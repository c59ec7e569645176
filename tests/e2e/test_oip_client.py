"""End to end: the Open Inference Protocol V2 routes, spoken to with Triton's own HTTP client.

One ``python -m api`` process over the committed models (real runtimes) for the module.
``tritonclient.http`` is the reference: what it sends and reads is what any V2 client does.
Its answers are compared with ``POST /predict`` for the same rows, and the traces with what
each request answered.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from db.engine import make_engine
from ml.manifest import TabularInput, read_manifest
from tests.helpers import (
    ADMIN,
    MODELS_DIR,
    V2_DATATYPE,
    attrition_manifest,
    heldout_rows,
    stored_trace,
    v2_body,
)
from tests.live_server import LiveServer, live_api, server_env

pytestmark = pytest.mark.e2e

MODEL = "attrition-logreg"
MANIFEST = attrition_manifest()
assert MANIFEST.name == MODEL and isinstance(MANIFEST.input, TabularInput)
FEATURES = MANIFEST.input.features
LABELS = MANIFEST.output.labels
NUMPY_TYPE = {"BYTES": np.object_, "INT64": np.int64, "FP64": np.float64}
CLIPS = MODELS_DIR / "_evaluation" / "instrument-recognition"
AUDIO_MODEL = "instrument-cnn"

# /predict and /v2/.../infer run the same scorer on the same rows; both wire formats carry
# an FP64 exactly (orjson writes the shortest repr that reads back as the same double, and
# the binary extension is the double's 8 bytes). So the probabilities must be identical:
# the tolerance is zero, on purpose.
PROBABILITY_ATOL = 0.0


ROWS = heldout_rows()


def committed_models() -> set[tuple[str, str]]:
    return {
        (path.parent.parent.name, path.parent.name) for path in MODELS_DIR.glob("*/*/manifest.json")
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("oip-e2e")
    env = server_env(MODELS_DIR, workdir, PRELOAD_MODELS=MODEL)
    with live_api(workdir, env, timeout=120) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as oip:
        yield oip


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> dict[str, str]:
    reply = httpx.post(f"{server.url}/auth/token", data=ADMIN)
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def tensors(
    rows: list[dict[str, Any]], *, binary: bool, shape: tuple[int, ...] | None = None
) -> list[triton.InferInput]:
    """One input a feature, the rows' values as a column of ``shape`` (default [N])."""
    inputs = []
    for feature in FEATURES:
        datatype = V2_DATATYPE[feature.type]
        values = [row[feature.name] for row in rows]
        if datatype == "BYTES":
            values = [value.encode() for value in values]
        array = np.array(values, dtype=NUMPY_TYPE[datatype]).reshape(shape or (len(rows),))
        tensor = triton.InferInput(feature.name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def native_predictions(server: LiveServer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    reply = httpx.post(f"{server.url}/predict/{MODEL}", json={"instances": rows}, timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["model"], body["fallback"], body["count"]) == (MODEL, False, len(rows))
    return body


def text(labels: np.ndarray) -> list[str]:
    """A BYTES output's elements as text: the client reads binary ones as bytes, JSON as str."""
    return [label.decode() if isinstance(label, bytes) else label for label in labels]


def assert_same_as_native(result: triton.InferResult, native: dict[str, Any]) -> None:
    expected_labels = [p["label"] for p in native["predictions"]]
    expected_probabilities = np.array(
        [[p["probabilities"][label] for label in LABELS] for p in native["predictions"]]
    )
    labels = result.as_numpy("label")
    probabilities = result.as_numpy("probabilities")
    assert labels is not None and probabilities is not None
    assert labels.shape == (len(expected_labels),)
    assert text(labels) == expected_labels
    assert probabilities.dtype == np.float64
    assert probabilities.shape == expected_probabilities.shape
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=0, atol=PROBABILITY_ATOL)


def binary_outputs(result: triton.InferResult) -> dict[str, bool]:
    """Each output's name, and whether the server sent it as binary data."""
    return {
        output["name"]: "binary_data_size" in output.get("parameters", {})
        for output in result.get_response()["outputs"]
    }


def refusal(call: Any, *args: Any, **kwargs: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call(*args, **kwargs)
    return caught.value


# --- 1. server ---------------------------------------------------------------------------


def test_server_is_live_ready_and_names_its_extensions(
    client: triton.InferenceServerClient,
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] and metadata["version"]
    assert {"binary_tensor_data", "model_repository"} <= set(metadata["extensions"])


# --- 2. model metadata and readiness ----------------------------------------------------


@pytest.mark.parametrize("version", ["", "1"])
def test_model_metadata_lists_one_input_a_feature(
    client: triton.InferenceServerClient,
    version: str,
) -> None:
    assert client.is_model_ready(MODEL, model_version=version)
    metadata = client.get_model_metadata(MODEL, model_version=version)
    assert metadata["name"] == MODEL and "1" in metadata["versions"]
    assert metadata["inputs"] == [
        {"name": f.name, "datatype": V2_DATATYPE[f.type], "shape": [-1]} for f in FEATURES
    ]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(LABELS)]},
    ]


def test_an_audio_model_takes_one_bytes_input(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata(AUDIO_MODEL)
    assert metadata["inputs"] == [{"name": "file", "datatype": "BYTES", "shape": [1]}]


def test_unknown_model_metadata_and_readiness_are_404(
    server: LiveServer,
    client: triton.InferenceServerClient,
) -> None:
    error = refusal(client.get_model_metadata, "no-such-model")
    assert error.status() == "404" and "no-such-model" in error.message()
    error = refusal(client.get_model_metadata, MODEL, model_version="99")
    assert error.status() == "404"
    # is_model_ready answers False on any non-200; the status itself is read with httpx.
    assert not client.is_model_ready("no-such-model")
    for path in ("no-such-model/ready", f"{MODEL}/versions/99/ready"):
        reply = httpx.get(f"{server.url}/v2/models/{path}")
        assert reply.status_code == 404 and reply.json()["error"], reply.text


# --- 3. inference against /predict ------------------------------------------------------


@pytest.mark.parametrize(
    ("binary_in", "binary_out"),
    [(False, False), (True, True), (True, False), (False, True), (True, None), (False, None)],
    ids=[
        "json",
        "binary",
        "binary-in-json-out",
        "json-in-binary-out",
        "binary-in-default-out",
        "json-in-default-out",
    ],
)
def test_the_heldout_set_in_one_request_answers_as_predict_does(
    server: LiveServer,
    client: triton.InferenceServerClient,
    binary_in: bool,
    binary_out: bool | None,
) -> None:
    # binary_out None: no output named, so the client asks for every output, as binary data.
    outputs = (
        None
        if binary_out is None
        else [
            triton.InferRequestedOutput(name, binary_data=binary_out)
            for name in ("label", "probabilities")
        ]
    )
    result = client.infer(MODEL, tensors(ROWS, binary=binary_in), outputs=outputs)
    response = result.get_response()
    assert (response["model_name"], response["model_version"]) == (MODEL, "1")
    sent_binary = binary_out is None or binary_out
    assert binary_outputs(result) == {"label": sent_binary, "probabilities": sent_binary}
    assert_same_as_native(result, native_predictions(server, ROWS))


def test_one_output_asked_for_is_the_only_one_sent(client: triton.InferenceServerClient) -> None:
    result = client.infer(
        MODEL,
        tensors(ROWS[:3], binary=True),
        outputs=[triton.InferRequestedOutput("probabilities")],
    )
    assert binary_outputs(result) == {"probabilities": True}
    assert result.as_numpy("label") is None


@pytest.mark.parametrize("shape", [(1,), (1, 1)], ids=["shape-1", "shape-1x1"])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("index", [0, 1, len(ROWS) // 2, len(ROWS) - 1])
def test_one_row_requests_answer_as_predict_does(
    server: LiveServer,
    client: triton.InferenceServerClient,
    index: int,
    binary: bool,
    shape: tuple[int, ...],
) -> None:
    row = ROWS[index]
    result = client.infer(MODEL, tensors([row], binary=binary, shape=shape), model_version="1")
    assert_same_as_native(result, native_predictions(server, [row]))


def test_a_versionless_request_is_served_by_the_latest_version(
    client: triton.InferenceServerClient,
) -> None:
    result = client.infer(MODEL, tensors(ROWS[:2], binary=True))
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_a_compressed_request_answers_as_predict_does(
    server: LiveServer,
    client: triton.InferenceServerClient,
    algorithm: str,
) -> None:
    result = client.infer(
        MODEL,
        tensors(ROWS[:20], binary=True),
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    assert_same_as_native(result, native_predictions(server, ROWS[:20]))


# --- 4. request id ----------------------------------------------------------------------


def test_the_request_id_is_echoed(client: triton.InferenceServerClient) -> None:
    result = client.infer(MODEL, tensors(ROWS[:1], binary=False), request_id="abc")
    assert result.get_response()["id"] == "abc"
    anonymous = client.infer(MODEL, tensors(ROWS[:1], binary=False))
    assert "id" not in anonymous.get_response()


# --- 5. traces --------------------------------------------------------------------------


def raw_infer(
    server: LiveServer,
    body: bytes | dict[str, Any],
    *,
    model: str = MODEL,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` (bytes as they are, a dict as JSON) to ``model``'s V2 infer route."""
    return httpx.post(
        f"{server.url}/v2/models/{model}/infer",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


def test_a_v2_inference_is_traced_as_v2(server: LiveServer) -> None:
    engine = make_engine(server.env["DATABASE_URL"])
    reply = raw_infer(server, v2_body(ROWS[:3], id="traced"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["id"] == "traced"
    row = stored_trace(engine, reply.headers["x-request-id"])
    assert (row.protocol, row.outcome) == ("v2", "ok")
    assert (row.model_name, row.model_version, row.rows) == (MODEL, "1", 3)
    labels = reply.json()["outputs"][0]["data"]
    assert [answer["label"] for answer in row.output] == labels
    assert row.label is None  # a batch of 3: the labels are in the output only
    single = raw_infer(server, v2_body(ROWS[:1]))
    single_row = stored_trace(engine, single.headers["x-request-id"])
    assert single_row.label == single.json()["outputs"][0]["data"][0]
    native = httpx.post(f"{server.url}/predict/{MODEL}", json={"features": ROWS[0]})
    assert stored_trace(engine, native.headers["x-request-id"]).protocol == "rest"
    engine.dispose()


def test_the_clients_request_id_header_names_the_trace(
    server: LiveServer,
    client: triton.InferenceServerClient,
) -> None:
    # A sane X-Request-ID from the client is kept: a tritonclient request can be found by it.
    client.infer(MODEL, tensors(ROWS[:1], binary=True), headers={"X-Request-ID": "oip-e2e-1"})
    engine = make_engine(server.env["DATABASE_URL"])
    row = stored_trace(engine, "oip-e2e-1")
    engine.dispose()
    assert (row.protocol, row.outcome) == ("v2", "ok")
    assert (row.model_name, row.model_version) == (MODEL, "1")


def test_a_refused_v2_request_is_traced_too(server: LiveServer) -> None:
    bad = [{**ROWS[0], "BusinessTravel": "Teleporting"}]
    reply = raw_infer(server, v2_body(bad))
    assert reply.status_code == 400, reply.text
    assert "BusinessTravel" in reply.json()["error"]
    engine = make_engine(server.env["DATABASE_URL"])
    row = stored_trace(engine, reply.headers["x-request-id"])
    engine.dispose()
    assert (row.protocol, row.outcome, row.model_requested) == ("v2", "invalid_input", MODEL)
    assert (row.model_name, row.model_version) == (MODEL, "1")
    assert row.error and "BusinessTravel" in row.error


def test_a_viewer_sees_a_v2_trace_in_the_history(server: LiveServer, admin: dict[str, str]) -> None:
    reply = raw_infer(server, v2_body(ROWS[:1]))
    request_id = reply.headers["x-request-id"]
    record = httpx.get(f"{server.url}/predictions/{request_id}", headers=admin)
    assert record.status_code == 200, record.text
    assert (record.json()["outcome"], record.json()["model_name"]) == ("ok", MODEL)


# --- 6. errors --------------------------------------------------------------------------


def test_an_unknown_model_is_404(client: triton.InferenceServerClient) -> None:
    error = refusal(client.infer, "no-such-model", tensors(ROWS[:1], binary=True))
    assert error.status() == "404" and "no-such-model" in error.message()
    error = refusal(client.infer, MODEL, tensors(ROWS[:1], binary=True), model_version="99")
    assert error.status() == "404" and MODEL in error.message()


def without(inputs: list[triton.InferInput], name: str) -> list[triton.InferInput]:
    return [tensor for tensor in inputs if tensor.name() != name]


def replaced(
    inputs: list[triton.InferInput], name: str, array: np.ndarray, datatype: str, *, binary: bool
) -> list[triton.InferInput]:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return [tensor if t.name() == name else t for t in inputs]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_bad_inputs_are_400_naming_the_feature(
    client: triton.InferenceServerClient,
    binary: bool,
) -> None:
    good = tensors(ROWS[:2], binary=binary)
    cases = {
        "missing": (without(good, "OverTime"), "OverTime"),
        "fp32 category": (
            replaced(good, "Department", np.array([1.0, 2.0], np.float32), "FP32", binary=binary),
            "Department",
        ),
        "out of range": (
            replaced(good, "Age", np.array([30, 500], np.int64), "INT64", binary=binary),
            "Age",
        ),
        "unknown category": (
            replaced(
                good, "Gender", np.array([b"Female", b"Robot"], object), "BYTES", binary=binary
            ),
            "Gender",
        ),
        "rows disagree": (
            replaced(good, "Age", np.array([30], np.int64), "INT64", binary=binary),
            "rows",
        ),
        "unknown input": ([*good, _extra_input(binary)], "Nickname"),
    }
    if binary:  # JSON carries text only; binary BYTES may be any bytes
        cases["category not UTF-8"] = (
            replaced(
                good, "Gender", np.array([b"Female", b"\xffMale"], object), "BYTES", binary=True
            ),
            "Gender",
        )
    for case, (inputs, named) in cases.items():
        error = refusal(client.infer, MODEL, inputs)
        assert error.status() == "400", (case, error)
        assert named in error.message(), (case, error.message())


@pytest.mark.parametrize("shape", [(0,), (0, 1)], ids=["shape-0", "shape-0x1"])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_inputs_of_no_rows_are_400_naming_their_shape(
    client: triton.InferenceServerClient, binary: bool, shape: tuple[int, ...]
) -> None:
    error = refusal(client.infer, MODEL, tensors([], binary=binary, shape=shape))
    assert error.status() == "400", error
    assert f"shape {list(shape)}, expected [N] or [N, 1]" in error.message()


def _extra_input(binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("Nickname", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([b"a", b"b"], object), binary_data=binary)
    return tensor


def test_a_batch_over_the_row_limit_is_400(client: triton.InferenceServerClient) -> None:
    rows = (ROWS * 4)[:1001]  # MAX_BATCH_ROWS is 1000 by default
    error = refusal(client.infer, MODEL, tensors(rows, binary=True))
    assert error.status() == "400" and "1001" in error.message(), error


def test_an_unknown_output_is_400(client: triton.InferenceServerClient) -> None:
    error = refusal(
        client.infer,
        MODEL,
        tensors(ROWS[:1], binary=True),
        outputs=[triton.InferRequestedOutput("logits")],
    )
    assert error.status() == "400" and "logits" in error.message()


_BINARY_HEADER = (
    b'{"inputs": [{"name": "Age", "datatype": "INT64", "shape": [1], '
    b'"parameters": {"binary_data_size": 8}}]}'
)
LENGTH = "Inference-Header-Content-Length"
MALFORMED = {
    "invalid-json": (b'{"inputs": [', {}),
    "not-an-object": (b"[1, 2]", {}),
    "no-inputs": (b'{"id": "x"}', {}),
    "header-length-over-the-body": (b'{"inputs": []}', {LENGTH: "999"}),
    "header-length-not-a-number": (b'{"inputs": []}', {LENGTH: "ten"}),
    "binary-size-over-the-body": (_BINARY_HEADER + b"\x01\x00", {LENGTH: str(len(_BINARY_HEADER))}),
    "binary-without-header-length": (_BINARY_HEADER, {}),
    "empty-body": (b"", {}),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_body_is_400_never_422_or_500(server: LiveServer, case: str) -> None:
    body, headers = MALFORMED[case]
    reply = raw_infer(server, body, headers=headers)
    assert reply.status_code == 400, (reply.status_code, reply.text)
    error = reply.json()
    assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"]


def test_an_unknown_model_with_a_malformed_body_is_still_404(server: LiveServer) -> None:
    reply = raw_infer(server, b"{oops", model="no-such-model")
    assert reply.status_code == 404 and "no-such-model" in reply.json()["error"]


# --- 7. audio ---------------------------------------------------------------------------


def a_clip() -> Path:
    with (CLIPS / "labels.csv").open(newline="") as handle:
        name = next(row["file"] for row in csv.DictReader(handle) if row["label"] == "violin")
    return CLIPS / name


@pytest.mark.slow
def test_an_audio_clip_as_one_bytes_tensor_answers_as_the_upload(
    server: LiveServer,
    client: triton.InferenceServerClient,
) -> None:
    clip = a_clip()
    data = clip.read_bytes()
    native = httpx.post(
        f"{server.url}/predict/{AUDIO_MODEL}", files={"file": (clip.name, data)}, timeout=120
    )
    assert native.status_code == 200, native.text
    tensor = triton.InferInput("file", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=True)
    started = time.perf_counter()
    result = client.infer(AUDIO_MODEL, [tensor])
    seconds = time.perf_counter() - started
    labels = result.as_numpy("label")
    probabilities = result.as_numpy("probabilities")
    assert labels is not None and probabilities is not None
    assert text(labels) == [native.json()["label"]] == ["violin"]
    served = MODELS_DIR / AUDIO_MODEL / native.json()["version"]  # the labels of that version
    audio_labels = read_manifest(served / "manifest.json").output.labels
    # Same decoder and network on the same bytes; float32 inference may differ in the last bits
    # between two runs on different threads, so these are compared to 1e-6, not exactly.
    np.testing.assert_allclose(
        probabilities[0],
        [native.json()["probabilities"][label] for label in audio_labels],
        rtol=0,
        atol=1e-6,
    )
    assert seconds < 10, seconds  # the model was loaded by the upload above


def test_an_audio_model_refuses_two_tensors(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("file", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([b"a", b"b"], dtype=np.object_), binary_data=True)
    error = refusal(client.infer, AUDIO_MODEL, [tensor])
    assert error.status() == "400" and "file" in error.message()


# --- 8. repository ----------------------------------------------------------------------


def states(client: triton.InferenceServerClient) -> dict[tuple[str, str], str]:
    return {
        (row["name"], row["version"]): row["state"] for row in client.get_model_repository_index()
    }


def test_the_index_lists_every_committed_model_version(
    client: triton.InferenceServerClient,
) -> None:
    index = states(client)
    assert set(index) == committed_models()
    assert index[(MODEL, "1")] == "READY"  # preloaded
    assert set(index.values()) <= {"READY", "UNAVAILABLE"}


def test_load_and_unload_need_an_admin_and_show_in_the_index(
    client: triton.InferenceServerClient,
    admin: dict[str, str],
) -> None:
    target = ("attrition-gbm", "1")
    client.load_model("attrition-gbm", headers=admin)
    assert states(client)[target] == "READY"
    assert client.is_model_ready("attrition-gbm")
    client.unload_model("attrition-gbm", headers=admin)
    assert states(client)[target] != "READY"
    for call in (client.load_model, client.unload_model):
        error = refusal(call, "attrition-gbm")
        assert error.status() == "401", error
        error = refusal(call, "attrition-gbm", headers={"Authorization": "Bearer junk"})
        assert error.status() == "401", error
    assert states(client)[target] != "READY"  # the refused load loaded nothing


def test_loading_an_unknown_model_is_404(
    client: triton.InferenceServerClient,
    admin: dict[str, str],
) -> None:
    error = refusal(client.load_model, "no-such-model", headers=admin)
    assert error.status() == "404" and "no-such-model" in error.message()
