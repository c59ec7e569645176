"""POST /predict over HTTP (TestClient): answers, traces, metrics, and every kind of bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import joblib
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.settings import Settings
from db.tables import Prediction
from tests.helpers import MODELS_DIR, attrition_example, metric_value, trace_of


def test_predict_one_row_answers_and_traces(client: TestClient) -> None:
    before = metric_value(
        "mldeploy_predictions_total", model="attrition-logreg", version="1", outcome="ok"
    )
    response = client.post("/predict", json={"features": attrition_example()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert (body["model"], body["version"], body["fallback"]) == ("attrition-logreg", "1", False)
    assert body["label"] in ("No", "Yes")
    assert set(body["probabilities"]) == {"No", "Yes"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["latency_ms"] > 0
    row = trace_of(client, body["request_id"])
    assert row.outcome == "ok" and row.input == attrition_example()
    assert row.output == [{"label": body["label"], "probabilities": body["probabilities"]}]
    assert (row.model_name, row.model_version) == ("attrition-logreg", "1")
    assert row.label == body["label"]
    assert row.completed_at is not None and row.latency_ms is not None
    after = metric_value(
        "mldeploy_predictions_total", model="attrition-logreg", version="1", outcome="ok"
    )
    assert after == before + 1


def test_predict_batch_answers_each_row(client: TestClient) -> None:
    rows = [attrition_example(), {**attrition_example(), "Age": 55}, attrition_example()]
    response = client.post("/predict/attrition-gbm@1", json={"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "attrition-gbm" and body["count"] == 3
    assert len(body["predictions"]) == 3
    # The mock is a deterministic function of the row: equal rows, equal answers.
    assert body["predictions"][0] == body["predictions"][2]
    row = trace_of(client, body["request_id"])
    assert row.rows == 3 and row.label is None and len(row.output) == 3


def test_client_request_id_is_kept_when_sane(client: TestClient) -> None:
    sane = client.post(
        "/predict", json={"features": attrition_example()}, headers={"X-Request-ID": "abc-123"}
    )
    assert sane.headers["x-request-id"] == "abc-123" == sane.json()["request_id"]
    odd = client.get("/health", headers={"X-Request-ID": "<script>" * 20})
    assert odd.headers["x-request-id"] != "<script>" * 20
    assert len(odd.headers["x-request-id"]) == 32


def test_real_model_answers_what_the_pipeline_says(real_client: TestClient) -> None:
    example = attrition_example()
    pipeline = joblib.load(MODELS_DIR / "attrition-logreg/1/model.joblib")
    expected = pipeline.predict_proba(pd.DataFrame([example]))[0]
    body = real_client.post("/predict", json={"features": example}).json()
    assert body["probabilities"]["No"] == pytest.approx(expected[0], rel=1e-9)
    assert body["probabilities"]["Yes"] == pytest.approx(expected[1], rel=1e-9)


def _with(**changes: Any) -> dict[str, Any]:
    return {"features": {**attrition_example(), **changes}}


def _without(name: str) -> dict[str, Any]:
    features = attrition_example()
    del features[name]
    return {"features": features}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_without("OverTime"), "OverTime", "missing"),
        (_with(Shoe_Size=44), "Shoe_Size", "unknown feature"),
        (_with(Age="forty"), "Age", "integer"),
        (_with(Age=True), "Age", "integer"),
        (_with(Age=7), "Age", "between 18 and 100"),
        (_with(BusinessTravel="Often"), "BusinessTravel", "Travel_Rarely"),
        ({"features": [1, 2]}, "body", "object"),
        ({"features": {}, "instances": []}, "body", "exactly one"),
        ({"rows": []}, "rows", "exactly one"),
        ({"instances": []}, "instances", "non-empty"),
        ({"instances": [attrition_example(), "x"]}, "instances[1]", "object"),
        ({"instances": [{**attrition_example(), "Age": -1}]}, "instances[0].Age", "between"),
    ],
)
def test_invalid_input_is_422_naming_the_field_and_traced(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    problems = {item["field"]: item["problem"] for item in error["detail"]}
    assert words in problems[field], problems
    assert field in error["error"]
    row = trace_of(client, error["request_id"])
    assert row.outcome == "invalid_input" and field in (row.error or "")


@pytest.mark.parametrize(
    ("content", "headers", "status", "words"),
    [
        (b"", {"Content-Type": "application/json"}, 422, "empty"),
        (b"{not json", {"Content-Type": "application/json"}, 422, "not valid JSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 422, "JSON object"),
        (b"Age=30", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "JSON"),
        (b"\xff\xfe\x00garbage", {"Content-Type": "application/json"}, 422, "not valid JSON"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(
    client: TestClient, content: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    response = client.post("/predict", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    row = trace_of(client, response.json()["request_id"])
    assert row.outcome == "invalid_input"


def test_unknown_model_is_404_and_traced(client: TestClient) -> None:
    response = client.post("/predict/no-such-model", json={"features": {}})
    assert response.status_code == 404
    assert response.json()["error"] == "model 'no-such-model' is not registered"
    row = trace_of(client, response.json()["request_id"])
    assert (row.outcome, row.model_requested) == ("not_found", "no-such-model")


def test_unknown_version_is_404(client: TestClient) -> None:
    response = client.post("/predict/attrition-logreg@42", json={"features": {}})
    assert response.status_code == 404
    assert "no version '42'" in response.json()["error"]


def test_malformed_model_ref_is_422(client: TestClient) -> None:
    response = client.post("/predict/Not%20A%20Model", json={"features": {}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "model"


def test_batch_over_the_limit_is_413(make_settings: Callable[..., Settings]) -> None:
    from api.main import create_app

    with TestClient(create_app(make_settings(max_batch_rows=2))) as client:
        response = client.post("/predict", json={"instances": [attrition_example()] * 3})
    assert response.status_code == 413
    assert "MAX_BATCH_ROWS" in response.json()["error"]


def test_body_over_the_limit_is_413(make_settings: Callable[..., Settings]) -> None:
    from api.main import create_app

    with TestClient(create_app(make_settings(max_body_bytes=2048))) as client:
        response = client.post(
            "/predict", json={"features": {**attrition_example(), "Padding": "x" * 4000}}
        )
        assert response.status_code == 413
        assert "MAX_BODY_BYTES" in response.json()["error"]
        assert trace_of(client, response.json()["request_id"]).outcome == "invalid_input"


def test_file_upload_to_a_tabular_model_is_415(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("a.wav", b"RIFF....WAVE", "audio/wav")})
    assert response.status_code == 415
    assert "JSON features" in response.json()["error"]


def test_a_reused_client_request_id_never_shares_or_overwrites_a_row(client: TestClient) -> None:
    headers = {"X-Request-ID": "dup-123"}
    first = client.post("/predict", json={"features": attrition_example()}, headers=headers)
    second = client.post(
        "/predict", json={"features": {**attrition_example(), "Age": 60}}, headers=headers
    )
    third = client.post("/predict", json={"features": {}}, headers=headers)
    assert [r.status_code for r in (first, second, third)] == [200, 200, 422]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(Prediction).where(Prediction.request_id == "dup-123")).all()
    assert len(rows) == 3 and len({row.id for row in rows}) == 3
    ages = sorted(row.input.get("Age", 0) for row in rows)
    assert ages == [0, 24, 60]  # each row holds its own request's input
    assert trace_of(client, "dup-123").outcome == "invalid_input"  # the latest one


def test_json_nested_too_deep_to_store_is_still_traced(client: TestClient) -> None:
    deep = "[" * 300 + "]" * 300
    body = f'{{"features": {{"Age": {deep}}}}}'.encode()
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    row = trace_of(client, response.json()["request_id"])
    assert row.outcome == "invalid_input" and "unserialisable" in row.input


def test_malformed_multipart_is_a_4xx_not_a_500(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert 400 <= response.status_code < 500
