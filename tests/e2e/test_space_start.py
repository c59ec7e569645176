"""End to end: ``deploy/start.sh`` as the Space runs it, on loopback ports.

nginx on one port in front of the API and the Streamlit dashboard, all under supervisord:
the routes through the proxy, the dashboard's websocket upgrade, restarts after a crash,
and the trace storage the script chooses. ENV=test (mock runtimes) keeps it fast.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import ATTRITION_MODELS, attrition_example, copy_model
from tests.live_server import answers, free_port, running_process

ROOT = Path(__file__).resolve().parents[2]
START_SCRIPT = ROOT / "deploy" / "start.sh"
# Debian installs nginx in /usr/sbin, which a non-root PATH may lack.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
# RFC 6455: the server proves it read the handshake by hashing the key with this GUID.
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(NGINX is None, reason="needs nginx (apt-get install nginx)"),
    pytest.mark.skipif(
        importlib.util.find_spec("supervisor") is None,
        reason="needs supervisord (pip install -r deploy/requirements-space.txt)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("streamlit") is None, reason="needs streamlit (requirements.txt)"
    ),
]


@dataclass
class Space:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def supervised_pid(self, program: str) -> int:
        """The pid supervisord reports for ``program`` (0 while it is not running)."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "supervisor.supervisorctl",
                "-s",
                f"unix://{self.env['RUN_DIR']}/supervisor.sock",
                "pid",
                program,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return int(result.stdout.strip()) if result.stdout.strip().isdigit() else 0


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def space_env(workdir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a Space on loopback: mock runtimes, a copy of the model store."""
    store = workdir / "models"
    for name in ATTRITION_MODELS:
        copy_model(store, name)
    port, api_port, dashboard_port = distinct_free_ports(3)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "PYTHONPATH": str(ROOT),
        "PYTHON": sys.executable,
        "NGINX_BIN": str(NGINX),
        "ENV": "test",
        "MODELS_DIR": str(store),
        "FALLBACK_MODEL": "attrition-gbm",
        "DATA_DIR": str(workdir / "persistent"),
        "RUN_DIR": str(workdir / "run"),
        "LISTEN_HOST": "127.0.0.1",
        "PORT": str(port),
        "API_PORT": str(api_port),
        "DASHBOARD_PORT": str(dashboard_port),
    }
    env.update(overrides)
    return env


def wait_until(check: Callable[[], bool], timeout: float, what: str, space: Space) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if space.process.poll() is not None:
            raise RuntimeError(f"start.sh exited with {space.process.returncode}:\n{space.log()}")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {timeout} s:\n{space.log()}")


@contextmanager
def running_space(workdir: Path, env: dict[str, str]) -> Iterator[Space]:
    url = f"http://127.0.0.1:{env['PORT']}"
    log_path = workdir / "space.log"
    with running_process(
        ["sh", str(START_SCRIPT)],  # as the image's CMD runs it: through sh
        cwd=workdir,
        env=env,
        log_path=log_path,
        is_up=lambda: answers(f"{url}/health") and answers(f"{url}/dashboard/_stcore/health"),
        timeout=90,
        stop_timeout=30,  # supervisord stops its programs on SIGTERM, as on `docker stop`
    ) as process:
        yield Space(url, process, env, log_path)


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Space]:
    workdir = tmp_path_factory.mktemp("space")
    # A mounted persistent volume, as a Space with persistent storage has at /data.
    (workdir / "persistent").mkdir()
    with running_space(workdir, space_env(workdir)) as running:
        yield running


def test_api_routes_are_served_through_nginx(space: Space) -> None:
    root = httpx.get(f"{space.url}/")
    assert root.status_code == 200
    # The API builds its links from the Host nginx passes on: they point back through the proxy.
    assert root.json()["links"]["docs"] == f"{space.url}/docs"
    assert root.json()["links"]["dashboard"] == "/dashboard/"

    answer = httpx.post(f"{space.url}/predict", json={"features": attrition_example()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "attrition-logreg"
    assert answer.headers["x-request-id"]

    docs = httpx.get(f"{space.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert httpx.get(f"{space.url}/openapi.json").json()["paths"]["/predict"]

    metrics = httpx.get(f"{space.url}/metrics")
    assert metrics.status_code == 200
    assert 'mldeploy_predictions_total{model="attrition-logreg"' in metrics.text


def test_traces_go_to_the_persistent_volume(space: Space) -> None:
    metadata = httpx.get(f"{space.url}/metadata").json()
    assert metadata["trace_storage"] == "persistent"
    assert (Path(space.env["DATA_DIR"]) / "traces.db").is_file()
    assert "EPHEMERAL" not in space.log()


def test_dashboard_is_served_under_its_prefix(space: Space) -> None:
    redirect = httpx.get(f"{space.url}/dashboard")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "/dashboard/"

    page = httpx.get(f"{space.url}/dashboard/")
    assert page.status_code == 200
    assert "<title>Streamlit</title>" in page.text
    assert httpx.get(f"{space.url}/dashboard/_stcore/health").text == "ok"


def test_dashboard_websocket_is_upgraded(space: Space) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    host = space.url.removeprefix("http://")
    handshake = (
        "GET /dashboard/_stcore/stream HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Origin: {space.url}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    )
    hostname, port = host.split(":")
    with socket.create_connection((hostname, int(port)), timeout=10) as connection:
        connection.sendall(handshake.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = connection.recv(4096)
            assert chunk, f"connection closed during the handshake: {response!r}"
            response += chunk
    status, *header_lines = response.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = {
        name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)
    }
    assert status.startswith("HTTP/1.1 101"), response
    assert headers["upgrade"].lower() == "websocket"
    expected = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
    assert headers["sec-websocket-accept"] == expected


@pytest.mark.parametrize(
    ("program", "path"),
    [
        ("api", "/health"),
        ("dashboard", "/dashboard/_stcore/health"),
    ],
)
def test_a_killed_process_is_restarted(space: Space, program: str, path: str) -> None:
    pid = space.supervised_pid(program)
    assert pid > 0, space.log()
    os.kill(pid, signal.SIGKILL)

    wait_until(
        lambda: space.supervised_pid(program) not in (0, pid) and answers(space.url + path),
        60,
        f"{program} was not restarted",
        space,
    )
    assert f"exited: {program} (terminated by SIGKILL" in space.log()


def test_ephemeral_traces_are_announced(tmp_path: Path) -> None:
    # No volume at DATA_DIR and a SQLite file elsewhere: what a Space without storage has.
    env = space_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'traces.db'}")
    with running_space(tmp_path, env) as space:
        assert httpx.get(f"{space.url}/metadata").json()["trace_storage"] == "ephemeral"
        assert "traces are EPHEMERAL" in space.log()


def test_a_program_that_cannot_start_stops_the_space(tmp_path: Path) -> None:
    # ENV=prod without SECRET_KEY: the API refuses to start, every retry; the container must
    # end (and show why) rather than run on without its API.
    env = space_env(tmp_path, ENV="prod")
    log_path = tmp_path / "space.log"
    # Append mode: supervisord writes its programs' output through its own /dev/stdout
    # (O_APPEND), and its own lines through this descriptor; with "wb" each of its lines
    # overwrote at its own offset what a program had just appended (a short error was lost).
    with log_path.open("ab") as log_file:
        subprocess.run(
            ["sh", str(START_SCRIPT)],
            cwd=tmp_path,
            env=env,
            timeout=120,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            check=False,
        )
    log = log_path.read_text(errors="replace")
    assert "gave up: api entered FATAL state" in log, log
    assert "SECRET_KEY" in log
    # Everything went down with it: nothing answers on the public port any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{env['PORT']}/health")
