"""A client that sends part of its body and stops is answered 408 in time, and traced; one that
sends part of its headers is answered 408 and its connection closed."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from db.engine import make_engine
from tests.helpers import copy_model, trace_rows
from tests.live_server import LiveServer, live_api, server_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("slow-clients")
    store = workdir / "models"
    copy_model(store, "attrition-logreg")
    env = server_env(
        store,
        workdir,
        BODY_READ_TIMEOUT_SECONDS="1",
        HEADER_READ_TIMEOUT_SECONDS="1",
        DEFAULT_MODEL="attrition-logreg",
    )
    with live_api(workdir, env) as live:
        yield live


def read_response(client: socket.socket) -> str:
    """The whole response: its headers, then as many bytes as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += client.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
    while len(body) < length:
        body += client.recv(65536)
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


@pytest.mark.parametrize("path", ["/predict", "/v2/models/attrition-logreg/infer"])
def test_a_body_that_stops_arriving_is_answered_408_and_traced(
    server: LiveServer, path: str
) -> None:
    request_id = f"slow-client-{len(path)}"
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as client:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: 500\r\nX-Request-ID: {request_id}\r\n\r\n"
        )
        client.sendall(head.encode() + b'{"features": {')
        started = time.monotonic()
        answer = read_response(client)
    assert time.monotonic() - started < 5
    status = 408 if path == "/predict" else 400
    assert answer.startswith(f"HTTP/1.1 {status}"), answer
    assert "did not all arrive" in answer
    engine = make_engine(server.env["DATABASE_URL"])
    outcomes = [row.outcome for row in trace_rows(engine, request_id)]
    engine.dispose()
    assert outcomes == ["invalid_input"]


def test_a_head_that_stops_arriving_is_answered_408_and_the_connection_closed(
    server: LiveServer,
) -> None:
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as client:
        client.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        started = time.monotonic()
        answer = read_response(client)
        assert client.recv(65536) == b""  # closed by the server
    assert time.monotonic() - started < 5
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "did not all arrive within 1 s" in answer
