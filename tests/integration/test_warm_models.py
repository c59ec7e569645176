"""WARM_MODELS: models loaded in the background once the API is up, before any request."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings


def test_warm_models_load_without_a_request_and_ready_does_not_wait(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings(warm_models="attrition-gbm"))) as client:
        assert client.get("/ready").status_code == 200
        deadline = time.monotonic() + 5
        while client.get("/models/attrition-gbm").json()["status"] != "loaded":
            assert time.monotonic() < deadline, "attrition-gbm was not warmed"
            time.sleep(0.05)
        assert client.get("/models/attrition-logreg").json()["status"] == "registered"
