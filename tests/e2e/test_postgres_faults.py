"""End to end: ``python -m api`` over a PostgreSQL that is restarted, then frozen, under it.

The cluster is the test's own (``initdb`` in a temporary folder, a free loopback port; see
``tests/pg_cluster.py``), never the machine's shared server. The promises checked are the
README's ("Traces"): an answered prediction is in the database (its row committed before the
answer left), a prediction whose row cannot be written is a 503, never a 200, a 500 or a
hang; and a frozen database makes ``/ready`` and ``/predict`` answer 503 in time.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import heldout_rows, v2_body
from tests.live_server import LiveServer, live_api, server_env
from tests.pg_cluster import ClusterUnavailable, PgCluster, pg_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "attrition-logreg"

LOAD_THREADS = 8
LOAD_SECONDS = 15.0
RESTARTS = (("fast", 3.0), ("fast", 7.0), ("immediate", 11.0))
"""Each restart's mode and when it starts, in seconds after the load began."""
CLIENT_TIMEOUT = 10.0
"""A request without an answer after this long is a hang: the test fails on it."""
RECOVERED_AFTER = 20
"""2xx answers the app must give after a restart before the next one: it recovered."""

FREEZE_SECONDS = 8.0
READY_BOUND = 2.0
COMMIT_TIMEOUT = 2.0
"""TRACE_COMMIT_TIMEOUT_SECONDS for the freeze: how long a request waits for its commit."""
PREDICT_BOUND = COMMIT_TIMEOUT + 1.5


ROWS = heldout_rows()


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with ExitStack() as stack:
        try:
            made = stack.enter_context(pg_cluster())
        except ClusterUnavailable as error:
            pytest.skip(f"no PostgreSQL cluster of the test's own: {error}")
        yield made


@pytest.fixture
def app(cluster: PgCluster, attrition_store: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """The app over a fresh database of the test's cluster, its models loaded at start."""
    database = f"faults_{uuid.uuid4().hex[:12]}"
    env = server_env(
        attrition_store,
        tmp_path,
        DATABASE_URL=cluster.create_database(database),
        PRELOAD_MODELS="attrition-logreg,attrition-gbm",
        TRACE_COMMIT_TIMEOUT_SECONDS=str(COMMIT_TIMEOUT),
    )
    with live_api(tmp_path, env, timeout=120) as live:
        yield live


def rows_by_request(cluster: PgCluster, live: LiveServer, ids: list[str]) -> dict[str, list[str]]:
    """Each request id's trace rows' outcomes, read from the database (which must be up)."""
    found: dict[str, list[str]] = {}
    for request_id, outcome in cluster.query(
        live.env["DATABASE_URL"].rsplit("/", 1)[1],
        "SELECT request_id, outcome FROM prediction WHERE request_id = ANY(%s)",
        ids,
    ):
        found.setdefault(str(request_id), []).append(str(outcome))
    return found


@dataclass
class Sent:
    kind: str
    request_id: str
    status: int | None
    """None: no answer (``error`` says why: a timeout, a reset connection)."""
    error: str | None
    started: float
    seconds: float
    echoed_id: str | None = None


def send(client: httpx.Client, kind: str, request_id: str, row: int) -> Sent:
    """One request of ``kind``; its answer, or why there was none."""
    headers = {"X-Request-ID": request_id}
    rows = [ROWS[(row + i) % len(ROWS)] for i in range(4)]
    if kind == "row":
        call = ("/predict", {"features": rows[0]})
    elif kind == "batch":
        call = ("/predict/attrition-gbm", {"instances": rows})
    elif kind == "v2":
        call = (f"/v2/models/{MODEL}/infer", v2_body(rows[:2]))
    else:  # "bad": refused before the model runs, whatever the database does
        call = ("/predict", {"features": {**rows[0], "Age": "old"}})
    started = time.monotonic()
    try:
        reply = client.post(call[0], json=call[1], headers=headers)
    except httpx.HTTPError as error:
        return Sent(kind, request_id, None, repr(error), started, time.monotonic() - started)
    return Sent(
        kind,
        request_id,
        reply.status_code,
        None if reply.is_success else reply.text[:300],
        started,
        time.monotonic() - started,
        reply.headers.get("x-request-id"),
    )


KINDS = ("row", "batch", "v2", "row", "batch", "v2", "row", "batch", "v2", "bad")


def load(url: str, worker: int, stop: threading.Event, results: list[Sent]) -> None:
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as client:
        for n in itertools.count():
            if stop.is_set():
                return
            kind = KINDS[(n + worker) % len(KINDS)]
            results.append(send(client, kind, f"load-{worker}-{n}", worker * 1000 + n))


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.05)


def test_restarts_under_load_lose_no_answered_prediction(
    cluster: PgCluster, app: LiveServer
) -> None:
    results: list[Sent] = []  # list.append is atomic: the threads share it
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(app.url, worker, stop, results), daemon=True)
        for worker in range(LOAD_THREADS)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    restarts: list[tuple[str, float, float]] = []
    try:
        for mode, at in RESTARTS:
            answered_before = sum(1 for r in results if r.status == 200)
            wait_for(
                lambda n=answered_before: (
                    sum(1 for r in results if r.status == 200) >= n + RECOVERED_AFTER
                ),
                CLIENT_TIMEOUT + 5,
                f"the app did not give {RECOVERED_AFTER} 200s "
                f"{'after the last restart' if restarts else 'at start'}",
            )
            stop.wait(max(0.0, began + at - time.monotonic()))  # the load's schedule
            restart_began = time.monotonic() - began
            cluster.restart(mode)
            restarts.append((mode, restart_began, time.monotonic() - began))
        answered_before = sum(1 for r in results if r.status == 200)
        wait_for(
            lambda: sum(1 for r in results if r.status == 200) >= answered_before + RECOVERED_AFTER,
            CLIENT_TIMEOUT + 5,
            f"the app did not give {RECOVERED_AFTER} 200s after the last restart",
        )
        stop.wait(max(0.0, began + LOAD_SECONDS - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(CLIENT_TIMEOUT + 5)
    assert not any(thread.is_alive() for thread in threads), "a load thread is still waiting"

    statuses = Counter(r.status for r in results)
    good = [r for r in results if r.kind != "bad"]
    answered = [r for r in results if r.status is not None and 200 <= r.status < 300]
    rows = rows_by_request(cluster, app, [r.request_id for r in results])
    outcomes = Counter(outcome for found in rows.values() for outcome in found)
    # Allowed, counted: the request stopped waiting (TRACE_COMMIT_TIMEOUT_SECONDS) or lost
    # the commit's reply, and its row committed all the same. Nothing unrecorded was a 200.
    refused_but_ok = sum(
        1 for r in results if r.status == 503 and "ok" in rows.get(r.request_id, [])
    )
    summary = (
        f"{len(results)} requests in {time.monotonic() - began:.1f} s, statuses {dict(statuses)}; "
        f"{len(answered)} answered 2xx, {statuses[503]} answered 503, "
        f"{sum(outcomes.values())} trace rows for them {dict(outcomes)}, {refused_but_ok} of the "
        f"503s with an 'ok' row; restarts (mode, began, done, s after start) "
        f"{[(m, round(a, 2), round(b, 2)) for m, a, b in restarts]}"
    )
    print(summary)
    log_tail = app.log()[-6000:]

    no_answer = [r for r in results if r.status is None]
    assert not no_answer, (
        f"{len(no_answer)} requests got no answer within {CLIENT_TIMEOUT} s (a hang) or lost "
        f"their connection, e.g. {no_answer[:3]}; {summary}\n--- app log ---\n{log_tail}"
    )
    wrong = [
        r for r in good if r.status is not None and not (200 <= r.status < 300 or r.status == 503)
    ]
    assert not wrong, (
        f"{len(wrong)} valid requests answered neither 2xx nor 503, e.g. {wrong[:3]}; "
        f"{summary}\n--- app log ---\n{log_tail}"
    )
    bad = [r for r in results if r.kind == "bad"]
    not_4xx = [r for r in bad if r.status is None or not (400 <= r.status < 500 or r.status == 503)]
    assert not not_4xx, f"bad requests not answered 4xx or 503: {not_4xx[:3]}; {summary}"
    # A refusal is an answer too: one whose row could not be written is a 503 instead.
    refused_unrecorded = [
        r
        for r in bad
        if r.status is not None
        and 400 <= r.status < 500
        and rows.get(r.request_id) != ["invalid_input"]
    ]
    assert not refused_unrecorded, (
        f"{len(refused_unrecorded)} bad requests answered 4xx without their invalid_input row, "
        f"e.g. {[(r.request_id, r.status, rows.get(r.request_id)) for r in refused_unrecorded[:5]]}"
        f"; {summary}"
    )
    misechoed = [r for r in results if r.status is not None and r.echoed_id != r.request_id]
    assert not misechoed, f"X-Request-ID not echoed: {misechoed[:3]}"

    unrecorded = [r for r in answered if rows.get(r.request_id) != ["ok"]]
    assert not unrecorded, (
        f"{len(unrecorded)} of {len(answered)} 2xx answers lack exactly one 'ok' row, e.g. "
        f"{[(r.request_id, r.kind, r.status, rows.get(r.request_id)) for r in unrecorded[:5]]}"
        f"; {summary}\n--- app log ---\n{log_tail}"
    )
    assert len(restarts) == len(RESTARTS) and len(answered) > 3 * RECOVERED_AFTER, summary


def ask(url: str, method: str, path: str, timeout: float, **kwargs: Any) -> Sent:
    started = time.monotonic()
    request_id = kwargs.pop("request_id", f"freeze-{uuid.uuid4().hex[:10]}")
    try:
        reply = httpx.request(
            method,
            f"{url}{path}",
            timeout=timeout,
            headers={"X-Request-ID": request_id},
            **kwargs,
        )
    except httpx.HTTPError as error:
        return Sent(path, request_id, None, repr(error), started, time.monotonic() - started)
    return Sent(
        path,
        request_id,
        reply.status_code,
        reply.text[:300],
        started,
        time.monotonic() - started,
        reply.headers.get("x-request-id"),
    )


def test_a_frozen_database_is_a_503_in_time_and_the_app_recovers(
    cluster: PgCluster, app: LiveServer
) -> None:
    warm = ask(app.url, "POST", "/predict", CLIENT_TIMEOUT, json={"features": ROWS[0]})
    assert warm.status == 200, warm
    assert ask(app.url, "GET", "/ready", CLIENT_TIMEOUT).status == 200
    during: dict[str, Sent] = {}

    def in_thread(name: str, method: str, path: str, **kwargs: Any) -> threading.Thread:
        def run() -> None:
            during[name] = ask(app.url, method, path, PREDICT_BOUND + 5, **kwargs)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    with cluster.frozen() as pids:
        frozen_at = time.monotonic()
        assert len(pids) >= 3, f"the cluster's processes were not found: {pids}"
        predicts = [
            in_thread("predict", "POST", "/predict", json={"features": ROWS[1]}),
            in_thread("v2", "POST", f"/v2/models/{MODEL}/infer", json=v2_body(ROWS[2:4])),
        ]
        ready = ask(app.url, "GET", "/ready", READY_BOUND + 5)
        v2_ready = ask(app.url, "GET", "/v2/health/ready", READY_BOUND + 5)
        for thread in predicts:
            thread.join(max(0.0, frozen_at + PREDICT_BOUND + 5 - time.monotonic()))
        # A request that arrives once the writer is already stuck on the frozen server.
        late = ask(app.url, "POST", "/predict", PREDICT_BOUND + 5, json={"features": ROWS[5]})
        still_frozen = time.monotonic() - frozen_at
        time.sleep(max(0.0, FREEZE_SECONDS - (time.monotonic() - frozen_at)))  # the freeze
    report = (
        f"frozen for {time.monotonic() - frozen_at:.1f} s; /ready {ready}; "
        f"/v2/health/ready {v2_ready}; during {during}; late {late}"
    )
    print(report)
    log_tail = app.log()[-6000:]

    for probe in (ready, v2_ready):
        assert probe.status == 503 and probe.seconds < READY_BOUND, (
            f"{probe.kind} should be a 503 within {READY_BOUND} s of a freeze: {report}"
        )
    assert still_frozen < FREEZE_SECONDS, f"the probes outlasted the freeze: {report}"
    for name in ("predict", "v2"):
        answer = during.get(name)
        assert answer is not None and answer.status == 503, (
            f"{name} during the freeze should be a 503: {report}\n--- app log ---\n{log_tail}"
        )
        assert answer.seconds < PREDICT_BOUND, (
            f"{name} took {answer.seconds:.2f} s (bound {PREDICT_BOUND} s): {report}"
        )
    assert late.status == 503 and late.seconds < PREDICT_BOUND, (
        f"a /predict sent while the writer was stuck should be a 503 within {PREDICT_BOUND} s: "
        f"{report}\n--- app log ---\n{log_tail}"
    )

    # Thawed: the app answers, and records, again.
    recovered: list[Sent] = []

    def answers_again() -> bool:
        recovered.append(
            ask(app.url, "POST", "/predict", CLIENT_TIMEOUT, json={"features": ROWS[6]})
        )
        return recovered[-1].status == 200

    wait_for(answers_again, 30, f"no /predict answered 200 after the thaw: {recovered[-3:]}")
    assert recovered[-1].seconds < CLIENT_TIMEOUT
    wait_for(
        lambda: ask(app.url, "GET", "/ready", CLIENT_TIMEOUT).status == 200,
        30,
        "/ready did not come back to 200 after the thaw",
    )
    rows = rows_by_request(cluster, app, [recovered[-1].request_id])
    assert rows.get(recovered[-1].request_id) == ["ok"], (
        f"the first 200 after the thaw has no 'ok' row: {rows}; {report}"
    )
