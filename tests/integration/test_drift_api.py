"""GET /models/{name}/drift and the drift gauges, on the real attrition model and its profile."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ml.drift import PSI_ALERT, PSI_WARN
from tests.factories import rewrite_manifest
from tests.helpers import ADMIN, bearer, copy_model, heldout_rows, metric_value

BATCHES = 6
ROWS = 294  # the held-out set, in BATCHES requests of 49 rows


@pytest.fixture
def drift_client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The real runtimes, drift measured every 0.2 s on the last ``ROWS`` rows."""
    settings = make_settings(
        env="dev", drift_interval_seconds=0.2, drift_window=ROWS, drift_min_rows=50
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _send(client: TestClient, rows: list[dict[str, Any]]) -> None:
    size = len(rows) // BATCHES
    for start in range(0, size * BATCHES, size):
        response = client.post(
            "/predict/attrition-logreg", json={"instances": rows[start : start + size]}
        )
        assert response.status_code == 200, response.text


def _gauge(feature: str) -> float:
    return metric_value(
        "mldeploy_feature_drift_psi", model="attrition-logreg", version="1", feature=feature
    )


def test_ages_twenty_years_older_cross_the_alert_and_held_out_rows_stay_stable(
    drift_client: TestClient,
) -> None:
    headers = bearer(drift_client, ADMIN["username"], ADMIN["password"])
    assert drift_client.get("/models/attrition-logreg/drift").status_code == 401
    empty = drift_client.get("/models/attrition-logreg/drift", headers=headers).json()
    assert empty["features"] == [] and "DRIFT_MIN_ROWS" in empty["problem"]

    rows = heldout_rows()
    _send(drift_client, rows)
    stable = drift_client.get("/models/attrition-logreg/drift", headers=headers).json()
    assert stable["problem"] is None
    assert stable["window"]["requests"] == BATCHES
    assert stable["window"]["since"].endswith("Z")  # UTC, SQLite's naive times included
    assert stable["window"]["rows"] == len(rows) == ROWS
    assert stable["thresholds"] == {"warn": PSI_WARN, "alert": PSI_ALERT}
    assert len(stable["features"]) == 30
    assert max(f["psi"] for f in stable["features"]) < PSI_WARN, stable["features"][:3]
    assert stable["prediction_psi"] < PSI_WARN
    assert _gauge("Age") < PSI_WARN

    _send(drift_client, [{**row, "Age": min(row["Age"] + 20, 100)} for row in rows])
    deadline = time.monotonic() + 10
    while _gauge("Age") < PSI_ALERT and time.monotonic() < deadline:  # the schedule's doing
        time.sleep(0.1)
    assert _gauge("Age") > PSI_ALERT
    shifted = drift_client.get("/models/attrition-logreg/drift", headers=headers).json()
    assert (shifted["window"]["rows"], shifted["window"]["requests"]) == (ROWS, BATCHES)
    assert shifted["features"][0]["feature"] == "Age"
    assert shifted["features"][0]["psi"] > PSI_ALERT
    assert shifted["features"][0]["level"] == "alert"
    assert metric_value(
        "mldeploy_prediction_drift_psi", model="attrition-logreg", version="1"
    ) == pytest.approx(shifted["prediction_psi"])


def test_a_model_without_a_profile_is_a_409_and_an_unknown_one_a_404(
    attrition_store: Path, make_settings: Callable[..., Settings]
) -> None:
    old = copy_model(attrition_store, "attrition-logreg", as_name="attrition-old")
    rewrite_manifest(old, reference_profile=None)
    with TestClient(create_app(make_settings())) as client:
        headers = bearer(client, ADMIN["username"], ADMIN["password"])
        assert client.get("/models/nope/drift", headers=headers).status_code == 404
        response = client.get("/models/attrition-old/drift", headers=headers)
    assert response.status_code == 409
    assert "no reference profile" in response.json()["error"]
