"""The dashboard's pure parts: Prometheus parsing, traffic totals, comparison tables, the
login cookie's token, API errors."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
import pytest

from dashboard import comparison
from dashboard.api_client import (
    ApiClient,
    ApiResponseError,
    ApiUnavailableError,
    LoginRequiredError,
)
from dashboard.history import history_frame, summarise
from dashboard.login_cookie import unexpired_subject
from dashboard.service_metrics import parse_metrics
from dashboard.traffic import totals, traffic_frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def exposition(ok: int, failed: int, fast: int, slow: int, fallbacks: int = 0) -> str:
    """What the API's /metrics says after ``fast`` 1 ms and ``slow`` 50 ms requests."""
    return f"""\
# HELP mldeploy_predictions_total Prediction requests.
# TYPE mldeploy_predictions_total counter
mldeploy_predictions_total{{model="a",version="1",outcome="ok"}} {ok}
mldeploy_predictions_total{{model="a",version="1",outcome="invalid_input"}} {failed}
# HELP mldeploy_fallbacks_total Fallbacks.
# TYPE mldeploy_fallbacks_total counter
mldeploy_fallbacks_total{{requested_model="a",model="b",version="1"}} {fallbacks}
# HELP mldeploy_prediction_duration_seconds Latency.
# TYPE mldeploy_prediction_duration_seconds histogram
mldeploy_prediction_duration_seconds_bucket{{model="a",version="1",le="0.001"}} {fast}
mldeploy_prediction_duration_seconds_bucket{{model="a",version="1",le="0.1"}} {fast + slow}
mldeploy_prediction_duration_seconds_bucket{{model="a",version="1",le="+Inf"}} {fast + slow}
mldeploy_prediction_duration_seconds_count{{model="a",version="1"}} {fast + slow}
mldeploy_prediction_duration_seconds_sum{{model="a",version="1"}} 0.1
# HELP mldeploy_model_loaded Loaded.
# TYPE mldeploy_model_loaded gauge
mldeploy_model_loaded{{model="a",version="1"}} 1.0
mldeploy_model_loaded{{model="b",version="1"}} 0.0
"""


def test_parse_metrics_sums_what_the_overview_shows() -> None:
    snapshot = parse_metrics(exposition(ok=8, failed=2, fast=6, slow=2, fallbacks=1), T0)

    assert snapshot.total_predictions == 10 and snapshot.failed_predictions == 2
    assert snapshot.fallbacks == 1
    assert snapshot.loaded_models == ["a@1"]
    assert snapshot.latency_buckets == {0.001: 6, 0.1: 8, float("inf"): 8}


def test_traffic_totals_weigh_each_buckets_latency_by_its_requests() -> None:
    bucket = {"errors": 0, "fallbacks": 0}
    frame = traffic_frame(
        {
            "buckets": [
                {
                    **bucket,
                    "start": "2026-01-01T00:00:00Z",
                    "requests": 3,
                    "errors": 1,
                    "latency_ms_avg": 1.0,
                    "latency_ms_max": 2.0,
                },
                {
                    **bucket,
                    "start": "2026-01-01T00:01:00Z",
                    "requests": 0,
                    "latency_ms_avg": None,
                    "latency_ms_max": None,
                },
                {
                    **bucket,
                    "start": "2026-01-01T00:02:00Z",
                    "requests": 1,
                    "fallbacks": 1,
                    "latency_ms_avg": 5.0,
                    "latency_ms_max": 9.0,
                },
            ]
        }
    )

    total = totals(frame)

    assert (total.requests, total.errors, total.fallbacks) == (4, 1, 1)
    assert total.latency_ms_mean == pytest.approx(2.0) and total.latency_ms_max == 9.0
    assert totals(frame.iloc[1:2]).latency_ms_mean is None


def _jwt(claims: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"header.{body}.signature"


def test_the_login_cookie_keeps_only_a_token_that_has_not_expired() -> None:
    now = time.time()

    assert unexpired_subject(_jwt({"sub": "ana", "exp": now + 60})) == "ana"
    assert unexpired_subject(_jwt({"sub": "ana", "exp": now - 1})) is None
    assert unexpired_subject("null") is None and unexpired_subject("a.b.c") is None


def evaluation(model: str, auc: float, p50: float, predicted: list[str]) -> dict[str, Any]:
    truth = ["No", "Yes", "No", "Yes"]
    return {
        "model": model,
        "version": "1",
        "dataset": "heldout.csv",
        "metrics": {"roc_auc": auc, "accuracy": 0.5},
        "latency": {"p50_ms": p50, "p95_ms": 2 * p50},
        "predictions": [
            {"id": str(i), "true_label": t, "predicted_label": p}
            for i, (t, p) in enumerate(zip(truth, predicted, strict=True))
        ],
    }


EVALUATIONS = {
    "fast@1": evaluation("fast", 0.8, 0.01, ["No", "Yes", "No", "No"]),
    "slow@1": evaluation("slow", 0.7, 5.0, ["No", "No", "Yes", "No"]),
}


def test_metrics_table_marks_the_best_in_each_direction() -> None:
    table = comparison.metrics_table(EVALUATIONS)

    assert list(table.index) == ["roc_auc", "accuracy", "latency_p50_ms", "latency_p95_ms"]
    assert table.loc["roc_auc", "best"] == "fast@1"
    assert table.loc["latency_p50_ms", "best"] == "fast@1"
    assert table.loc["accuracy", "best"] == "fast@1, slow@1"


def test_recommendation_prefers_the_default_among_tied_leaders() -> None:
    tied = {"a@1": evaluation("a", 0.8, 1, ["No"] * 4), "b@1": evaluation("b", 0.8, 1, ["No"] * 4)}
    table = comparison.metrics_table(tied)

    advice = comparison.recommend(table, default_model="b")

    assert advice is not None and advice.model == "b@1" and advice.tied_with == ["a@1"]


def test_agreement_and_who_is_right() -> None:
    matrix = comparison.agreement_matrix(EVALUATIONS)
    breakdown = comparison.correctness_breakdown(EVALUATIONS["fast@1"], EVALUATIONS["slow@1"])

    assert matrix.loc["fast@1", "slow@1"] == pytest.approx(0.5)
    counts = dict(zip(breakdown["case"], breakdown["samples"], strict=True))
    assert counts == {
        "both right": 1,
        "only fast@1 right": 2,
        "only slow@1 right": 0,
        "both wrong": 1,
    }


def test_history_frame_puts_refused_requests_in_one_unknown_bucket() -> None:
    items = [
        {
            "received_at": "2026-01-01T10:00:00Z",
            "request_id": "r1",
            "model_requested": "a",
            "model_name": "a",
            "model_version": "1",
            "outcome": "ok",
            "label": "Yes",
            "is_fallback": False,
            "latency_ms": 1.5,
            "rows": 1,
            "input_kind": "tabular",
        },
        {
            "received_at": "2026-01-01T10:01:00+00:00",
            "request_id": "r2",
            "model_requested": "nope",
            "model_name": None,
            "model_version": None,
            "outcome": "not_found",
            "is_fallback": False,
            "latency_ms": None,
            "error": "model 'nope' is not registered",
        },
    ]

    items += [
        {**items[1], "request_id": "r3", "model_requested": "a@@b"},
        {**items[1], "request_id": "r4", "model_requested": "x" * 5000},
    ]
    frame = history_frame(items)

    assert list(frame["model"]) == ["a@1", "unknown", "unknown", "unknown"]
    assert list(frame["requested"][:3]) == ["a", "nope", "a@@b"]
    assert len(frame["requested"][3]) == 60 and frame["requested"][3].endswith("…")
    assert isinstance(frame["received_at"].dtype, pd.DatetimeTZDtype)
    summary = summarise(frame)
    assert (summary.requests, summary.failed, summary.median_latency_ms) == (4, 3, 1.5)


def client_answering(status: int, body: Any) -> ApiClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return ApiClient("http://api.test", transport=transport)


def test_api_errors_carry_the_apis_message() -> None:
    with pytest.raises(ApiResponseError) as raised:
        client_answering(404, {"error": "model 'x' is not registered"}).model("x")
    assert raised.value.status_code == 404 and raised.value.message.endswith("not registered")

    with pytest.raises(LoginRequiredError):
        client_answering(401, {"error": "token expired"}).predictions("old-token")


def test_an_unreachable_api_says_how_to_start_it() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = ApiClient("http://api.test", transport=httpx.MockTransport(refuse))

    with pytest.raises(ApiUnavailableError, match="python -m api"):
        api.health()
