"""Registry and service routes: /, health, readiness, /models, /metadata, /metrics, OpenAPI."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.helpers import attrition_example, metric_value


def test_root_names_the_service_and_links(client: TestClient) -> None:
    body = client.get("/").json()
    assert body["service"] == "Futurisys ML Deploy"
    assert body["default_model"] == "attrition-logreg"
    assert set(body["links"]) >= {"docs", "metrics", "dashboard", "models"}


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["registered_models"] == 2


def test_models_lists_status_default_and_metrics(client: TestClient) -> None:
    before = {m["name"]: m["status"] for m in client.get("/models").json()["models"]}
    assert before == {"attrition-gbm": "registered", "attrition-logreg": "registered"}
    client.post("/predict", json={"features": attrition_example()})
    listing = client.get("/models").json()
    models = {m["name"]: m for m in listing["models"]}
    assert models["attrition-logreg"]["status"] == "loaded"
    assert models["attrition-logreg"]["is_default"] and not models["attrition-gbm"]["is_default"]
    assert models["attrition-logreg"]["metrics"]["roc_auc"] > 0.8
    measured_on = models["attrition-logreg"]["metrics_measured_on"]
    assert measured_on["dataset"] == "_evaluation/employee-attrition/heldout.csv"
    assert measured_on["samples"] == 294
    assert listing["fallback_models"] == ["attrition-gbm", "instrument-mfcc"]


def test_model_detail_has_the_manifest_and_unknown_is_404(client: TestClient) -> None:
    detail = client.get("/models/attrition-gbm").json()
    assert detail["manifest"]["task"] == "employee-attrition"
    assert len(detail["manifest"]["input"]["features"]) == 30
    missing = client.get("/models/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_metadata_service_and_model_card(client: TestClient) -> None:
    service = client.get("/metadata").json()
    assert service["env"] == "test" and service["default_model"] == "attrition-logreg"
    assert service["registry"]["versions"] == 2 and service["uptime_seconds"] >= 0
    card = client.get("/metadata", params={"model": "attrition-logreg@1"}).json()
    assert card["labels"] == ["No", "Yes"] and 0 < card["decision_threshold"] < 1
    assert card["training"]["data"]["rows"] == 1470
    assert client.get("/metadata", params={"model": "nope"}).status_code == 404


def test_metrics_count_http_requests_by_route(client: TestClient) -> None:
    # The registry is the process's: earlier tests' requests are in it, so count the increase.
    labels = {"handler": "/models/{name}", "method": "GET", "status": "200"}
    before = metric_value("mldeploy_http_requests_total", **labels)

    client.get("/models/attrition-gbm")
    text = client.get("/metrics").text

    series = 'mldeploy_http_requests_total{handler="/models/{name}",method="GET",status="200"}'
    exposed = [
        float(line.removeprefix(series))
        for line in text.splitlines()
        if line.startswith(series + " ")
    ]
    assert exposed == [before + 1]


def test_metrics_token_guards_metrics(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(metrics_token="scrape-me"))) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200 and "mldeploy_" in right.text


def test_unknown_route_and_method_are_json_errors(client: TestClient) -> None:
    missing = client.get("/does-not-exist")
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
    assert "x-request-id" in missing.headers
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_openapi_documents_predict_with_real_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict/{model_ref}"]["post"]["requestBody"]["content"]
    example = body["application/json"]["examples"]["attrition-logreg-row"]["value"]
    assert example == {"features": attrition_example()}
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    assert "422" in schema["paths"]["/predict"]["post"]["responses"]
    assert client.get("/docs").status_code == 200
