"""Debian's Prometheus scraping the live API with the metrics token: the fallback alert of
deploy/prometheus/rules.yml fires, and every Grafana panel's PromQL answers with data."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import ROOT, copy_model, heldout_rows
from tests.live_server import answers, free_port, live_api, running_process, server_env

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus; CI has it)"
    ),
]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mldeploy.json"
WAIT_SECONDS = 90


@dataclass
class Stack:
    api: str
    prometheus: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API over the attrition models and a broken copy (its artifact does not match its
    sha256, so attrition-gbm serves for it), and Prometheus over the real config and rules,
    every ``for:`` cut to 0s, scraping and evaluating each second."""
    workdir = tmp_path_factory.mktemp("prometheus")
    store = workdir / "models"
    for name in ("attrition-logreg", "attrition-gbm"):
        copy_model(store, name)
    broken = copy_model(store, "attrition-logreg", as_name="attrition-broken")
    (broken / "model.compiled.json").write_text("{}")
    token = secrets.token_urlsafe(24)
    env = server_env(
        store, workdir, METRICS_TOKEN=token, DRIFT_INTERVAL_SECONDS="1", DRIFT_MIN_ROWS="20"
    )
    with live_api(workdir, env) as api:
        config = _test_config(workdir, api.url.removeprefix("http://"), token)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with running_process(
            command,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin"},
            log_path=workdir / "prometheus.log",
            is_up=lambda: answers(f"{url}/-/ready"),
        ):
            yield Stack(api.url, url)


def _test_config(workdir: Path, target: str, token: str) -> Path:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules))
    (workdir / "metrics_token").write_text(token)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(workdir / "rules.yml")]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    job["authorization"]["credentials_file"] = str(workdir / "metrics_token")
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _drive(api: str) -> None:
    """A second of traffic: answers, fallbacks (the broken model) and invalid inputs."""
    rows = heldout_rows()[:60]
    with httpx.Client(base_url=api, timeout=10) as client:
        for model in ("attrition-logreg", "attrition-broken"):
            for start in range(0, len(rows), 20):
                answer = client.post(
                    f"/predict/{model}", json={"instances": rows[start : start + 20]}
                )
                assert answer.status_code == 200, answer.text
        invalid = client.post("/predict", json={"features": {**rows[0], "Age": 7}})
        assert invalid.status_code == 422


def _until(check: Callable[[], Any], api: str, what: str) -> Any:
    """``check()`` once it is truthy, traffic going on meanwhile; fails after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        _drive(api)
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WAIT_SECONDS} s")
        time.sleep(0.5)


def test_the_fallback_alert_fires(stack: Stack) -> None:
    def firing() -> list[dict[str, Any]]:
        alerts = httpx.get(f"{stack.prometheus}/api/v1/alerts").json()["data"]["alerts"]
        return [
            alert
            for alert in alerts
            if alert["labels"]["alertname"] == "MldeployHighFallbackRatio"
            and alert["state"] == "firing"
        ]

    (alert,) = _until(firing, stack.api, "no MldeployHighFallbackRatio firing")
    assert "come from a fallback model" in alert["annotations"]["summary"]
    up = _query(stack.prometheus, 'up{job="mldeploy"}')
    assert up["result"][0]["value"][1] == "1"  # scraped with the token


def test_every_grafana_panel_answers_with_data(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (datasource,) = provisioned["datasources"]
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {datasource["uid"]}
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    assert len(queries) >= 10
    for title, expr in queries:
        data = _until(
            lambda expr=expr: _query(stack.prometheus, expr)["result"],
            stack.api,
            f"panel {title!r}: {expr} gave no data",
        )
        assert data, title


def _query(prometheus: str, expr: str) -> dict[str, Any]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    data: dict[str, Any] = body["data"]
    return data
