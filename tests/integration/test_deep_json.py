"""JSON bodies nested deep (issue 9, finding 3): refused quickly, each with its one trace row.

orjson reads up to 1,024 levels and writes up to 255, so a body between the two parses but
its value cannot be stored as it is: the trace must still get its row (a capped stand-in),
on SQLite and PostgreSQL alike, and the request must not hang or hold memory.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.helpers import only_trace, trace_rows

DEPTHS = (100, 500, 990, 1023, 1100)
# Generous for a slow CI machine; the hang this guards against never answered at all.
_MAX_SECONDS = 5.0


def _nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _in_a_feature_value(depth: int) -> bytes:
    # The body's own two levels (the object and "features") count toward orjson's limit.
    return f'{{"features": {{"Age": {_nested_list(depth)}}}}}'.encode()


def _objects_in_a_feature_value(depth: int) -> bytes:
    return f'{{"features": {{"Age": {_nested_object(depth)}}}}}'.encode()


def _as_the_whole_body(depth: int) -> bytes:
    return _nested_list(depth).encode()


def _as_the_whole_object_body(depth: int) -> bytes:
    return ('{"features":' * depth + "{}" + "}" * depth).encode()


SHAPES = {
    "feature-list": _in_a_feature_value,
    "feature-object": _objects_in_a_feature_value,
    "body-list": _as_the_whole_body,
    "body-object": _as_the_whole_object_body,
}


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_deeply_nested_json_is_422_quickly_with_exactly_one_row(
    client: TestClient, shape: str, depth: int
) -> None:
    request_id = f"deep-{shape}-{depth}"
    body = SHAPES[shape](depth)
    started = time.perf_counter()
    response = client.post(
        "/predict",
        content=body,
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 422, response.text[:500]
    assert response.json()["request_id"] == request_id
    assert elapsed < _MAX_SECONDS, f"took {elapsed:.1f} s"
    row = only_trace(client.app.state.engine, request_id)  # type: ignore[attr-defined]
    assert row.outcome == "invalid_input"
    assert row.error
    assert isinstance(row.input, dict)  # a capped stand-in, never the nested value itself


def test_the_server_still_answers_after_deep_bodies(client: TestClient) -> None:
    for depth in DEPTHS:
        client.post(
            "/predict",
            content=_in_a_feature_value(depth),
            headers={"Content-Type": "application/json"},
        )
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200


def _v2_tensor_data(depth: int) -> bytes:
    tensor = f'{{"name": "Age", "datatype": "INT64", "shape": [1], "data": {_nested_list(depth)}}}'
    return f'{{"inputs": [{tensor}]}}'.encode()


def _v2_parameters(depth: int) -> bytes:
    return f'{{"inputs": [], "parameters": {_nested_object(depth)}}}'.encode()


V2_SHAPES = {
    "tensor-data": _v2_tensor_data,
    "parameters": _v2_parameters,
    "body": _as_the_whole_body,
}


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", sorted(V2_SHAPES))
def test_deeply_nested_v2_request_is_400_with_exactly_one_row(
    client: TestClient, shape: str, depth: int
) -> None:
    # msgspec (the quick OIP parser) raised RecursionError from about 990 levels: a 500.
    request_id = f"deep-v2-{shape}-{depth}"
    response = client.post(
        "/v2/models/attrition-logreg/infer",
        content=V2_SHAPES[shape](depth),
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    assert response.status_code == 400, response.text[:500]
    rows = trace_rows(client.app.state.engine, request_id)  # type: ignore[attr-defined]
    assert [row.outcome for row in rows] == ["invalid_input"]
