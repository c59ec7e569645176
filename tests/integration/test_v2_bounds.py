"""An OIP request larger than any the model could take is refused before its tensors are
decoded (decoding runs on the event loop), answered 400 naming the bound, and traced."""

from __future__ import annotations

import json
import struct

from fastapi.testclient import TestClient

from tests.helpers import trace_rows

_INFER = "/v2/models/attrition-logreg/infer"


def _refused(client: TestClient, request_id: str, body: bytes, **headers: str) -> str:
    response = client.post(
        _INFER,
        content=body,
        headers={"Content-Type": "application/json", "X-Request-ID": request_id, **headers},
    )
    assert response.status_code == 400, response.text[:300]
    rows = trace_rows(client.app.state.engine, request_id)  # type: ignore[attr-defined]
    assert [row.outcome for row in rows] == ["invalid_input"]
    error: str = response.json()["error"]
    return error


def test_more_than_twice_the_models_features_as_inputs_are_refused(client: TestClient) -> None:
    inputs = [{"name": f"x{i}", "datatype": "INT64", "shape": [1], "data": [1]} for i in range(61)]
    error = _refused(client, "v2-too-many-inputs", json.dumps({"inputs": inputs}).encode())
    assert "the request has 61 inputs; this model takes 30" in error


def test_more_rows_than_max_batch_rows_in_binary_bytes_are_refused(client: TestClient) -> None:
    count = 1_000_000  # 4 MB of empty BYTES elements
    binary = struct.pack("<I", 0) * count
    tensor = {
        "name": "BusinessTravel",
        "datatype": "BYTES",
        "shape": [count],
        "parameters": {"binary_data_size": len(binary)},
    }
    header = json.dumps({"inputs": [tensor]}).encode()
    error = _refused(
        client,
        "v2-too-many-rows",
        header + binary,
        **{"Inference-Header-Content-Length": str(len(header))},
    )
    assert f"shape [{count}] has more than 1000 elements (MAX_BATCH_ROWS rows a request)" in error
