"""The API answers as its OpenAPI schema says (what schemathesis found, issue 9, finding 15).

The live fuzzing is ``tests/e2e/test_schemathesis.py``; these are its findings, each checked
in-process in a moment: error bodies and statuses as documented, time zones on SQLite too,
the ``Allow`` of a 405, the ``/metrics`` bearer scheme in any case (finding 14).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.helpers import attrition_example

_METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, path_item in schema["paths"].items()
        for method, operation in path_item.items()
        if method in _METHODS
    ]


def _body_ref(response: dict[str, Any]) -> str | None:
    ref: str | None = response["content"]["application/json"]["schema"].get("$ref")
    return ref


def test_every_error_is_documented_with_the_body_it_has(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    # FastAPI's own 422 body (loc, msg, type) is never answered: it is not documented either.
    assert "HTTPValidationError" not in json.dumps(schema)
    for path, method, operation in _operations(schema):
        responses = operation["responses"]
        errors = {status: response for status, response in responses.items() if int(status) >= 400}
        expected = "V2Error" if path.startswith("/v2") else "ErrorResponse"
        for status, response in errors.items():
            if path.endswith("/ready") and status == "503":
                continue  # a readiness answer: {"ready": false}
            assert _body_ref(response) == f"#/components/schemas/{expected}", (path, status)
        if path.startswith("/v2"):
            assert "422" not in responses, path  # 400 under /v2, 408 and 413 too
        elif "requestBody" in operation:
            assert {"408", "413"} <= set(responses), (method, path)


# What each route answers besides its success, from its code (and what schemathesis saw).
_ANSWERED = [
    ("post", "/auth/token", {"401", "422", "429", "503"}),
    ("get", "/auth/me", {"401", "503"}),
    ("post", "/users", {"400", "401", "403", "409", "422", "503"}),
    ("patch", "/users/{username}", {"400", "401", "403", "404", "409", "422", "503"}),
    ("get", "/predictions", {"401", "422", "503"}),
    ("get", "/predictions/{request_id}", {"401", "404", "503"}),
    ("get", "/models/{name}", {"404"}),
    ("post", "/models/reload", {"401", "403", "503"}),
    ("post", "/models/{name}/load", {"401", "403", "404", "503"}),
    ("get", "/models/{name}/evaluation", {"404", "409", "422", "503"}),
    ("get", "/metadata", {"404"}),
    ("get", "/metrics", {"401"}),
    ("get", "/ready", {"503"}),
    ("get", "/v2/models/{model_name}", {"400", "404"}),
    ("get", "/v2/models/{model_name}/ready", {"404", "503"}),
    ("post", "/v2/repository/models/{model_name}/load", {"401", "403", "404", "503"}),
    ("post", "/predict", {"404", "413", "415", "422", "503"}),
    ("post", "/v2/models/{model_name}/infer", {"400", "404", "503"}),
]


def test_the_statuses_a_route_answers_are_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    undocumented = {
        (method, path): sorted(statuses - set(paths[path][method]["responses"]))
        for method, path, statuses in _ANSWERED
    }
    assert {key: missing for key, missing in undocumented.items() if missing} == {}


def test_a_validation_error_has_the_documented_body(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.post("/users", json={"username": "x"}, headers=admin_headers)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error", "detail", "request_id"}
    assert {"field": "body.password", "problem": "Field required"} in body["detail"]


def test_timestamps_have_a_time_zone(client: TestClient, admin_headers: dict[str, str]) -> None:
    me = client.get("/auth/me", headers=admin_headers).json()
    users = client.get("/users", headers=admin_headers).json()
    predicted = client.post("/predict", json={"features": attrition_example()})
    record = client.get(f"/predictions/{predicted.json()['request_id']}", headers=admin_headers)
    models = client.get("/models").json()["models"]
    moments = [me["created_at"], *(user["created_at"] for user in users)]
    moments += [record.json()["received_at"], record.json()["completed_at"]]
    moments += [version["created_at"] for model in models for version in model["versions"]]
    for moment in moments:
        assert datetime.fromisoformat(moment).utcoffset() is not None, moment


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # /models/{name} (GET) matches first: Starlette alone answered "Allow: GET".
        ("OPTIONS", "/models/reload", "POST"),
        ("GET", "/models/attrition-gbm/load", "POST"),
        # Two routes, one a method: Starlette named the first only.
        ("DELETE", "/users", "GET, POST"),
        ("PUT", "/models/attrition-gbm", "GET"),
        ("OPTIONS", "/v2/models/attrition-gbm/ready", "GET"),
        ("GET", "/predict", "POST"),
    ],
)
def test_a_405_allows_the_documented_methods(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_metrics_take_the_bearer_scheme_in_any_case(
    make_settings: Callable[..., Settings], scheme: str
) -> None:
    with TestClient(create_app(make_settings(metrics_token="scrape-me"))) as client:
        right = client.get("/metrics", headers={"Authorization": f"{scheme} scrape-me"})
        assert right.status_code == 200 and "mldeploy_" in right.text
        for refused in (f"{scheme} nope", "Basic scrape-me", "scrape-me", f"{scheme}scrape-me"):
            response = client.get("/metrics", headers={"Authorization": refused})
            assert response.status_code == 401, refused
