"""ray_serve's parts that need no cluster: the SQLite refusal, the shared secret, the proxy's
503 for an unanswered request, the metrics copy, and /metadata's replica outside Ray."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from api.settings import Settings
from ray_serve import metrics_export
from ray_serve.__main__ import shared_secret
from ray_serve.deployment import SqliteWithReplicasError, check_database
from ray_serve.proxy import UnansweredIs503
from tests.helpers import attrition_example


def test_sqlite_is_refused_for_more_than_one_replica() -> None:
    sqlite = Settings(database_url="sqlite:///data/traces.db")
    with pytest.raises(SqliteWithReplicasError, match="REPLICAS=2 .*PostgreSQL"):
        check_database(sqlite, replicas=2)
    check_database(sqlite, replicas=1)
    check_database(Settings(database_url="postgresql://u@db/traces"), replicas=2)


def test_every_replica_gets_one_secret_key_when_none_is_set() -> None:
    made = shared_secret(Settings(env="test"))
    assert made.secret_key is not None and len(made.secret_key.get_secret_value()) >= 32
    given = Settings(env="test", secret_key=SecretStr("k" * 40))
    assert shared_secret(given) is given


def _run(app: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(UnansweredIs503(app)({"type": "http"}, receive, send))
    return sent


def test_a_request_left_unanswered_by_the_proxy_is_a_503_with_retry_after() -> None:
    async def dead_replica(scope: Scope, receive: Receive, send: Send) -> None:
        return None  # what Serve's proxy does when the replica died before answering

    start, body = _run(dead_replica)
    assert start["status"] == 503 and (b"retry-after", b"1") in start["headers"]
    assert b"retry" in body["body"]


def test_an_answered_request_passes_through_untouched() -> None:
    async def answers(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    assert [message.get("status") for message in _run(answers)] == [200, None]


def test_the_metrics_copy_sets_one_gauge_per_mldeploy_sample(
    monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    set_values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    class RecordingGauge:
        def __init__(self, name: str, description: str, tag_keys: tuple[str, ...]) -> None:
            self.name, self.tag_keys = name, tag_keys

        def set(self, value: float, tags: dict[str, str]) -> None:
            assert tuple(tags) == self.tag_keys
            set_values[(self.name, tuple(sorted(tags.items())))] = value

    monkeypatch.setattr(metrics_export, "Gauge", RecordingGauge)
    assert client.post("/predict", json={"features": attrition_example()}).status_code == 200
    copied = metrics_export.MetricsExport().copy_once()
    names = {name for name, _ in set_values}
    assert copied == len(set_values) > 0
    assert all(name.startswith("mldeploy_") for name in names)
    assert not any(name.endswith("_created") for name in names)
    assert "mldeploy_predictions_total" in names


def test_metadata_names_the_process_and_no_ray_replica_outside_ray(client: TestClient) -> None:
    replica = client.get("/metadata").json()["replica"]
    assert replica["pid"] > 0
    assert replica["ray_replica_id"] is None and replica["ray_node_id"] is None
    card = client.get("/metadata", params={"model": "attrition-logreg"}).json()
    assert card["replica"] == replica
