"""The dashboard's pure parts: Prometheus parsing, rates, comparison tables, API errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from dashboard.service_metrics import (
    histogram_quantile,
    history_frame as metrics_history,
    parse_metrics,
)

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


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.001: 6.0, 0.1: 8.0, float("inf"): 8.0}

    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001 * 4 / 6)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.001 + 0.099 * (7.6 - 6) / 2)
    assert histogram_quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert histogram_quantile(0.99, {0.1: 1.0, float("inf"): 5.0}) == 0.1


def test_history_gives_rates_and_recent_latency_per_interval() -> None:
    first = parse_metrics(exposition(ok=8, failed=2, fast=6, slow=2), T0)
    second = parse_metrics(exposition(ok=18, failed=2, fast=6, slow=12), T0 + timedelta(seconds=5))

    frame = metrics_history([first, second])

    row = frame.iloc[0]
    assert row["requests_per_s"] == pytest.approx(2.0) and row["failed_per_s"] == 0
    assert row["p50_ms"] > 1  # the interval's requests were all slow ones


def test_a_restarted_api_does_not_give_negative_rates() -> None:
    before = parse_metrics(exposition(ok=100, failed=0, fast=100, slow=0), T0)
    after = parse_metrics(exposition(ok=3, failed=0, fast=3, slow=0), T0 + timedelta(seconds=1))

    assert metrics_history([before, after]).iloc[0]["requests_per_s"] == pytest.approx(3.0)


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
