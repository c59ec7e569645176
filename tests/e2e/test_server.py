"""End to end: ``python -m api`` as a real process, spoken to over HTTP on loopback."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.engine import make_engine
from tests.helpers import ADMIN, ATTRITION_MODELS, attrition_example, copy_model, stored_trace
from tests.live_server import LiveServer, live_api, server_env

pytestmark = pytest.mark.e2e


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{key}="{value}"' in match[1] for key, value in labels.items()):
            total += float(match[2])
    return total


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("e2e")
    store = workdir / "models"
    for name in ATTRITION_MODELS:
        copy_model(store, name)
    with live_api(workdir, server_env(store, workdir)) as live:
        yield live


def test_curl_like_prediction_is_answered_traced_and_counted(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/predict", json={"features": attrition_example()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] in ("No", "Yes") and body["model"] == "attrition-logreg"
    row = stored_trace(make_engine(server.env["DATABASE_URL"]), body["request_id"])
    assert row.outcome == "ok" and row.label == body["label"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        metric(metrics, "mldeploy_predictions_total", model="attrition-logreg", outcome="ok") >= 1
    )


def test_batch_and_bad_inputs_over_http(server: LiveServer) -> None:
    batch = httpx.post(
        f"{server.url}/predict/attrition-gbm", json={"instances": [attrition_example()] * 4}
    )
    assert batch.status_code == 200 and batch.json()["count"] == 4
    cases = [
        ({"json": {"features": {**attrition_example(), "Age": "old"}}}, 422),
        ({"content": b"{oops", "headers": {"Content-Type": "application/json"}}, 422),
        ({"data": {"Age": "30"}}, 415),
        ({"json": {"features": {}}, "url_suffix": "/nope"}, 404),
    ]
    for kwargs, status in cases:
        suffix = kwargs.pop("url_suffix", "")
        response = httpx.post(f"{server.url}/predict{suffix}", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, response.text
        assert response.json()["error"] and response.headers["x-request-id"]


def test_auth_roles_over_http(server: LiveServer) -> None:
    url = server.url
    assert httpx.post(f"{url}/models/reload").status_code == 401
    bad = httpx.post(f"{url}/models/reload", headers={"Authorization": "Bearer junk"})
    assert bad.status_code == 401
    token = httpx.post(f"{url}/auth/token", data=ADMIN).json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}
    created = httpx.post(
        f"{url}/users",
        json={"username": "e2e-viewer", "password": "viewer-pass-9"},
        headers=admin,
    )
    assert created.status_code == 201
    viewer_token = httpx.post(
        f"{url}/auth/token", data={"username": "e2e-viewer", "password": "viewer-pass-9"}
    ).json()["access_token"]
    viewer = {"Authorization": f"Bearer {viewer_token}"}
    assert httpx.post(f"{url}/models/reload", headers=viewer).status_code == 403
    assert httpx.get(f"{url}/predictions", headers=viewer).status_code == 200
    assert httpx.post(f"{url}/models/attrition-gbm/load", headers=admin).status_code == 200


def test_concurrent_first_requests_load_the_model_once(tmp_path: Path) -> None:
    store = tmp_path / "models"
    copy_model(store, "attrition-gbm")
    with live_api(tmp_path, server_env(store, tmp_path, DEFAULT_MODEL="attrition-gbm")) as live:

        def ask(_: int) -> int:
            reply = httpx.post(
                f"{live.url}/predict", json={"features": attrition_example()}, timeout=30
            )
            return reply.status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(ask, range(16)))
        metrics = httpx.get(f"{live.url}/metrics").text
    assert statuses == [200] * 16
    assert metric(metrics, "mldeploy_model_load_duration_seconds_count", model="attrition-gbm") == 1


def test_fallback_story_when_the_artifact_no_longer_matches(tmp_path: Path) -> None:
    store = tmp_path / "models"
    broken = copy_model(store, "attrition-logreg")
    copy_model(store, "attrition-gbm")
    (broken / "model.joblib").write_bytes((broken / "model.joblib").read_bytes() + b"!")
    env = server_env(store, tmp_path)
    with live_api(tmp_path, env) as live:
        body = httpx.post(f"{live.url}/predict", json={"features": attrition_example()}).json()
        models = {m["name"]: m["status"] for m in httpx.get(f"{live.url}/models").json()["models"]}
        metrics = httpx.get(f"{live.url}/metrics").text
    assert (body["model"], body["fallback"]) == ("attrition-gbm", True)
    row = stored_trace(make_engine(env["DATABASE_URL"]), body["request_id"])
    assert row.is_fallback and "sha256" in (row.fallback_reason or "")
    assert models["attrition-logreg"] == "failed"
    assert metric(metrics, "mldeploy_fallbacks_total", requested_model="attrition-logreg") == 1
    assert metric(metrics, "mldeploy_model_load_failures_total", model="attrition-logreg") == 1


def test_counters_add_up_across_two_workers(tmp_path: Path) -> None:
    store = tmp_path / "models"
    copy_model(store, "attrition-logreg")

    def predict_and_name_worker(base_url: str) -> int:
        # A new connection each time, so that the kernel hands it to either worker.
        response = httpx.post(f"{base_url}/predict", json={"features": attrition_example()})
        assert response.status_code == 200
        return int(httpx.get(f"{base_url}/metadata").json()["worker_pid"])

    with live_api(tmp_path, server_env(store, tmp_path, WORKERS="2")) as live:
        workers: set[int] = set()
        sent = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            while len(workers) < 2 and sent < 400:
                workers.update(pool.map(predict_and_name_worker, [live.url] * 16))
                sent += 16
        scrapes = [httpx.get(f"{live.url}/metrics").text for _ in range(6)]
    assert len(workers) == 2, "both workers should have answered"
    for text in scrapes:  # whichever worker answers the scrape, it counts all of them
        assert (
            metric(text, "mldeploy_predictions_total", model="attrition-logreg", outcome="ok")
            == sent
        )
