"""The API as a Ray Serve application on a real two-node Ray cluster (issue 15 §1).

A head and a worker node (``ray.cluster_utils.Cluster``: a raylet process each, one CPU
each, so that the two replicas land one per node), then ``python -m ray_serve`` joins them
with ``RAY_ADDRESS`` as ``make ray-run`` would, over a PostgreSQL database of this module's
own (created beside TEST_DATABASE_URL's, dropped afterwards). The tests share that
deployment and run in file order: the replica kill comes last.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from ray.cluster_utils import Cluster
from sqlalchemy.engine import make_url

from ray_serve.proxy import PROXY_ENVIRONMENT
from tests.helpers import ADMIN, attrition_example, copy_model, v2_body
from tests.live_server import ROOT, answers, free_port, running_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

MODEL = "attrition-logreg"
ROW = {"features": attrition_example()}
REPLICAS = 2
PROPAGATION_LIMIT_SECONDS = 2.0
_MIB = 1024 * 1024


@dataclass
class Served:
    url: str
    database_url: str
    metrics_ports: list[int]
    predictions_ok: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def predict(self, client: httpx.Client) -> httpx.Response:
        return self.counted(client.post(f"/predict/{MODEL}", json=ROW))

    def counted(self, response: httpx.Response) -> httpx.Response:
        """``response``, a prediction's, counted when answered (the metrics test's total)."""
        if response.status_code == 200:
            with self.lock:
                self.predictions_ok += 1
        return response


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database of this module's own on TEST_DATABASE_URL's server, never that database."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: the Ray tests need PostgreSQL")
    url = make_url(base)
    name = f"{url.database}_ray_serve"
    admin_url = url.set(drivername="postgresql", database="postgres")
    conninfo = admin_url.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, list[int]]]:
    """Head and worker node, one CPU each, their metrics agents on ports of their own."""
    # Inherited by every Ray process (replicas, proxy), as a cluster's nodes are started
    # for ray_serve (README, Scale out): our packages, the proxy's settings.
    environment = {
        "PYTHONPATH": str(ROOT),
        **PROXY_ENVIRONMENT,
        "RAY_DISABLE_USAGE_STATS": "1",
    }
    # A short path of its own: Ray's socket paths must fit in 107 characters.
    temp_dir = tempfile.mkdtemp(prefix="ray15-")
    ports = [free_port(), free_port()]
    node = {"num_cpus": 1, "object_store_memory": 80 * _MIB, "include_dashboard": False}
    # Ray writes the cluster's address under $RAY_TMPDIR/ray whatever temp_dir a node is
    # given: on a fresh machine the default, /tmp/ray, does not exist, and the head node
    # failed to start. Ours does.
    os.mkdir(os.path.join(temp_dir, "ray"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", temp_dir)
        for name, value in environment.items():
            patch.setenv(name, value)
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                **node,
                "metrics_export_port": ports[0],
                "temp_dir": temp_dir,
                # Replicas report their metrics each second, not each 10 s.
                "_system_config": {"metrics_report_interval_ms": 1000},
            },
        )
        try:
            cluster.add_node(**node, metrics_export_port=ports[1])
            cluster.wait_for_nodes()
            yield cluster, ports
        finally:
            cluster.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def served(
    cluster: tuple[Cluster, list[int]],
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """``python -m ray_serve`` on the cluster: two replicas over attrition-logreg 1 and 2."""
    ray_cluster, metrics_ports = cluster
    workdir = tmp_path_factory.mktemp("ray-serve")
    store = workdir / "models"
    copy_model(store, MODEL)
    copy_model(store, MODEL, as_version="2")
    copy_model(store, "attrition-gbm")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "RAY_ADDRESS": ray_cluster.address,
        "RAY_DISABLE_USAGE_STATS": "1",
        "REPLICAS": str(REPLICAS),
        "ENV": "test",
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "MODELS_DIR": str(store),
        "FALLBACK_MODEL": "attrition-gbm",
        "ADMIN_USERNAME": ADMIN["username"],
        "ADMIN_PASSWORD": ADMIN["password"],
    }
    with running_process(
        [sys.executable, "-m", "ray_serve"],
        cwd=ROOT,
        env=env,
        log_path=workdir / "ray_serve.log",
        is_up=lambda: answers(f"{url}/ready") and len(replicas_seen(url)) == REPLICAS,
        timeout=90,
        stop_timeout=30,
    ):
        yield Served(url, database_url, metrics_ports)


def replicas_seen(url: str, requests: int = 20) -> dict[str, dict[str, Any]]:
    """The replicas that answered ``requests`` calls of /metadata, by Ray replica id."""
    seen: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=5) as client:
        for _ in range(requests):
            try:
                replica = client.get("/metadata").json()["replica"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue
            seen[replica["ray_replica_id"]] = replica
    return seen


def test_requests_spread_over_both_replicas_on_both_nodes(served: Served) -> None:
    seen = replicas_seen(served.url, requests=40)
    assert len(seen) == REPLICAS
    assert len({replica["ray_node_id"] for replica in seen.values()}) == 2, seen
    assert len({replica["pid"] for replica in seen.values()}) == 2
    # The fast routes (plain ASGI ahead of FastAPI's router) pass through Serve's ingress.
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for _ in range(10):
            assert served.predict(client).status_code == 200
        infer = served.counted(
            client.post(f"/v2/models/{MODEL}/infer", json=v2_body([attrition_example()]))
        )
        assert infer.status_code == 200, infer.text


def test_every_replicas_predictions_reach_ray_metrics_export_once(served: Served) -> None:
    """Each node's metrics agent serves its replicas' series, a replica label each; their
    sum is the number of predictions answered, so nothing is counted twice."""
    deadline = time.monotonic() + 30
    while True:
        by_replica = _ok_predictions_by_replica(served.metrics_ports)
        if sum(by_replica.values()) == served.predictions_ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sum(by_replica.values()) == served.predictions_ok, by_replica
    assert len(by_replica) == REPLICAS, by_replica


def test_an_alias_change_reaches_both_replicas_within_2_s(
    served: Served, record_property: Callable[[str, Any], None]
) -> None:
    with httpx.Client(base_url=served.url, timeout=5) as client:
        login = client.post("/auth/token", data=ADMIN)
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        # No champion yet: the latest version serves, on every replica.
        assert set(_champion_by_replica(client, requests=20).values()) == {"2"}
        started = time.monotonic()
        # The token comes from one replica and may be checked by the other: one secret key.
        response = client.put(
            f"/models/{MODEL}/aliases/champion", json={"version": "1"}, headers=admin
        )
        assert response.status_code == 200, response.text
        caught_up: dict[str, float] = {}
        while len(caught_up) < REPLICAS and time.monotonic() - started < 5:
            card = client.get("/metadata", params={"model": MODEL}).json()
            replica = card["replica"]["ray_replica_id"]
            if card["version"] == "1":
                caught_up.setdefault(replica, time.monotonic() - started)
            else:
                assert replica not in caught_up, "a replica went back to the old champion"
            time.sleep(0.01)
    record_property("seconds_until_each_replica", caught_up)
    assert len(caught_up) == REPLICAS, caught_up
    assert max(caught_up.values()) < PROPAGATION_LIMIT_SECONDS, caught_up


def test_a_killed_replica_is_replaced_and_loses_no_acknowledged_prediction(
    served: Served, record_property: Callable[[str, Any], None]
) -> None:
    victim = next(iter(replicas_seen(served.url).values()))
    statuses: collections.Counter[int | str] = collections.Counter()
    acknowledged: list[str] = []
    stop_at = time.monotonic() + 6

    def load() -> None:
        with httpx.Client(base_url=served.url, timeout=15) as client:
            while time.monotonic() < stop_at:
                try:
                    response = served.predict(client)
                except httpx.HTTPError as error:  # counted: the test allows none
                    statuses[type(error).__name__] += 1
                    continue
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    acknowledged.append(response.json()["request_id"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    os.kill(victim["pid"], signal.SIGKILL)
    for thread in threads:
        thread.join()

    record_property("statuses", dict(statuses))
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] > 0
    assert _stored_request_ids(served.database_url, acknowledged) == set(acknowledged)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = replicas_seen(served.url)
        if len(seen) == REPLICAS and victim["ray_replica_id"] not in seen:
            break
        time.sleep(0.5)
    assert len(seen) == REPLICAS and victim["ray_replica_id"] not in seen, seen


_SAMPLE = re.compile(r"^ray_mldeploy_predictions_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def _ok_predictions_by_replica(ports: list[int]) -> dict[str, float]:
    totals: dict[str, float] = collections.defaultdict(float)
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match is None:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            if labels.get("outcome") == "ok":
                totals[labels["replica"]] += float(match["value"])
    return dict(totals)


def _champion_by_replica(client: httpx.Client, requests: int) -> dict[str, str]:
    found = {}
    for _ in range(requests):
        card = client.get("/metadata", params={"model": MODEL}).json()
        found[card["replica"]["ray_replica_id"]] = card["version"]
    return found


def _stored_request_ids(database_url: str, request_ids: list[str]) -> set[str]:
    conninfo = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False)) as connection:
        rows = connection.execute(
            "SELECT request_id FROM prediction WHERE request_id = ANY(%s)", (request_ids,)
        ).fetchall()
    return {row[0] for row in rows}
