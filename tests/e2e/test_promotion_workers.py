"""Promotion and rollback with two workers over HTTP: every worker serves a change within 2 s.

One keep-alive connection per worker (a connection stays with the worker that accepted it,
and ``/metadata`` names that worker's pid), so each check asks each worker in turn. On
SQLite, and on the PostgreSQL of TEST_DATABASE_URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN, VIEWER, attrition_example, copy_model
from tests.live_server import LiveServer, live_api, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "attrition-logreg"
ROW = {"features": attrition_example()}
WORKERS = 2
PROPAGATION_LIMIT_SECONDS = 2.0
_CONNECT_ATTEMPTS = 200


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    """Two workers (mock runtimes) over attrition-logreg 1 and 2 and attrition-gbm 1."""
    store = tmp_path / "models"
    copy_model(store, MODEL)
    copy_model(store, MODEL, as_version="2")
    copy_model(store, "attrition-gbm")
    env = server_env(store, tmp_path, ENV="test", WORKERS=str(WORKERS), DATABASE_URL=database_url)
    with live_api(tmp_path, env) as live:
        yield live


@pytest.fixture
def workers(server: LiveServer) -> Iterator[dict[int, httpx.Client]]:
    """A connection to each worker, by its pid."""
    found: dict[int, httpx.Client] = {}
    for _ in range(_CONNECT_ATTEMPTS):
        client = httpx.Client(
            base_url=server.url,
            timeout=5.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        pid = worker_pid(client)
        if pid in found:
            client.close()
        else:
            found[pid] = client
        if len(found) == WORKERS:
            break
    try:
        assert len(found) == WORKERS, "every worker should have accepted a connection"
        yield found
    finally:
        for client in found.values():
            client.close()


def worker_pid(client: httpx.Client) -> int:
    return int(client.get("/metadata").json()["worker_pid"])


def token(client: httpx.Client, user: dict[str, str]) -> dict[str, str]:
    response = client.post("/auth/token", data=user)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def served_version(client: httpx.Client, path: str = f"/predict/{MODEL}") -> str:
    body = client.post(path, json=ROW).json()
    return f"{body['model']}@{body['version']}"


def version_status(client: httpx.Client, version: str) -> str:
    versions = client.get(f"/models/{MODEL}").json()["versions"]
    return next(str(v["status"]) for v in versions if v["version"] == version)


def seconds_until_every_worker(
    workers: dict[int, httpx.Client], check: Callable[[httpx.Client], bool]
) -> float:
    """How long until ``check`` holds on every worker; fails past the 2 s limit."""
    started = time.monotonic()
    waiting = dict(workers)
    while waiting:
        waiting = {pid: client for pid, client in waiting.items() if not check(client)}
        elapsed = time.monotonic() - started
        assert elapsed < PROPAGATION_LIMIT_SECONDS, f"workers {sorted(waiting)} lag behind"
        time.sleep(0.02)
    for pid, client in workers.items():
        assert worker_pid(client) == pid, "the connection moved to another worker"
    return time.monotonic() - started


def test_every_worker_follows_promotion_rollback_and_lifecycle(
    workers: dict[int, httpx.Client], record_property: Callable[[str, Any], None]
) -> None:
    first, second = workers.values()
    admin = token(first, ADMIN)
    assert {served_version(client) for client in workers.values()} == {f"{MODEL}@2"}
    timings: dict[str, float] = {}

    first.post(f"/models/{MODEL}/unload", params={"version": "2"}, headers=admin)
    timings["unload"] = seconds_until_every_worker(
        workers, lambda client: version_status(client, "2") == "registered"
    )
    second.post(f"/models/{MODEL}/load", params={"version": "1"}, headers=admin)
    timings["load"] = seconds_until_every_worker(
        workers, lambda client: version_status(client, "1") == "loaded"
    )

    for version in ("1", "2"):
        response = first.put(
            f"/models/{MODEL}/aliases/champion", json={"version": version}, headers=admin
        )
        assert response.status_code == 200, response.text
        timings[f"champion {version}"] = seconds_until_every_worker(
            workers, lambda client, v=version: served_version(client) == f"{MODEL}@{v}"
        )
    assert second.post(f"/models/{MODEL}/rollback", headers=admin).status_code == 200
    timings["rollback"] = seconds_until_every_worker(
        workers, lambda client: served_version(client) == f"{MODEL}@1"
    )
    first.put("/default-model", json={"model": "attrition-gbm"}, headers=admin)
    timings["default model"] = seconds_until_every_worker(
        workers, lambda client: served_version(client, "/predict") == "attrition-gbm@1"
    )
    record_property("propagation_seconds", timings)
    print("propagation across workers (s):", {k: round(v, 3) for k, v in timings.items()})

    first.post("/users", json={**VIEWER, "role": "viewer"}, headers=admin)
    viewer = token(second, VIEWER)
    refused = second.put(f"/models/{MODEL}/aliases/champion", json={"version": "2"}, headers=viewer)
    assert refused.status_code == 403
    history = second.get(f"/models/{MODEL}/history", headers=viewer).json()["items"]
    assert [(item["action"], item["from_version"], item["to_version"]) for item in history] == [
        ("default_model", MODEL, "attrition-gbm"),
        ("rollback", "2", "1"),
        ("alias_set", "1", "2"),
        ("alias_set", None, "1"),
        ("load", None, "1"),
        ("unload", None, "2"),
    ]
    assert {served_version(client) for client in workers.values()} == {f"{MODEL}@1"}
