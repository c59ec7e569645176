"""End to end: ``deploy/start.sh`` as the Space runs it, on loopback ports.

nginx on one port in front of the API and the Streamlit dashboard, all under supervisord:
the routes through the proxy, the dashboard's websocket upgrade, restarts after a crash,
the trace storage the script chooses, and every acknowledged prediction found again after
everything was killed and started on a fresh disk with only the bucket left. ENV=test (mock
runtimes) keeps it fast.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from db.trace_log import read_segment, segment_paths
from tests.helpers import ADMIN, ATTRITION_MODELS, attrition_example, copy_model
from tests.live_server import answers, free_port, is_running, running_process

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
        # No bucket unless a test makes this folder; the database on this run's own disk.
        "BUCKET_DIR": str(workdir / "bucket"),
        "LOCAL_DATA_DIR": str(workdir / "disk"),
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
    # A mounted storage bucket, as a Space with a bucket volume has at /data.
    (workdir / "bucket").mkdir()
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


def test_traces_are_logged_to_the_bucket_and_queried_from_local_disk(space: Space) -> None:
    answer = httpx.post(f"{space.url}/predict", json={"features": attrition_example()})
    assert answer.status_code == 200, answer.text

    metadata = httpx.get(f"{space.url}/metadata").json()
    assert metadata["trace_storage"] == "persistent" and metadata["trace_warning"] is None
    bucket = Path(space.env["BUCKET_DIR"])
    assert (Path(space.env["LOCAL_DATA_DIR"]) / "traces.db").is_file()
    assert not list(bucket.glob("**/*.db"))  # no live SQLite file on the bucket
    logged = {i for path in segment_paths(bucket / "trace-log") for i, _ in read_segment(path).rows}
    assert len(logged) >= 1
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
    # No bucket mounted at BUCKET_DIR: what a Space without storage has.
    with running_space(tmp_path, space_env(tmp_path)) as space:
        metadata = httpx.get(f"{space.url}/metadata").json()
        assert metadata["trace_storage"] == "ephemeral"
        assert metadata["trace_warning"].startswith("TRACES ARE EPHEMERAL")
        assert "TRACES ARE EPHEMERAL" in space.log()


def session_processes(session_id: int) -> list[int]:
    """Every live process of ``session_id`` (Linux: read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(fields[3]) == session_id and is_running(int(entry.name)):
            members.append(int(entry.name))
    return members


def kill_everything(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the Space's every process, as a crash of the container would.

    supervisord puts each program in a process group of its own, so the start script's
    group is not all of it: its session is (start_new_session below).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    while members := session_processes(process.pid):
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    process.wait()


def predict_until(url: str, stop: threading.Event, acknowledged: list[str]) -> None:
    """Predict until ``stop`` or until the Space dies; the request ids answered 200."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            try:
                answer = client.post(f"{url}/predict", json={"features": attrition_example()})
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                acknowledged.append(answer.json()["request_id"])


def bucket_files(bucket: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in bucket.rglob("*") if path.is_file()}


def test_every_acknowledged_prediction_outlives_sigkill_and_a_fresh_disk(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"  # the one thing that outlives the container
    bucket.mkdir()
    first = tmp_path / "first"
    first.mkdir()
    admin = {"ADMIN_USERNAME": ADMIN["username"], "ADMIN_PASSWORD": ADMIN["password"]}
    env = space_env(first, BUCKET_DIR=str(bucket), WORKERS="2", **admin)
    url = f"http://127.0.0.1:{env['PORT']}"
    with (first / "space.log").open("ab") as log_file:
        process = subprocess.Popen(
            ["sh", str(START_SCRIPT)],
            cwd=first,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    acknowledged: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not answers(f"{url}/health"):
            assert process.poll() is None and time.monotonic() < deadline, (
                first / "space.log"
            ).read_text(errors="replace")
            time.sleep(0.1)
        stop = threading.Event()
        clients = [
            threading.Thread(target=predict_until, args=(url, stop, acknowledged)) for _ in range(8)
        ]
        for client in clients:
            client.start()
        time.sleep(2)
        kill_everything(process)  # in the middle of the traffic
        stop.set()
        for client in clients:
            client.join(30)
    finally:
        kill_everything(process)  # again, when something above failed
    assert len(acknowledged) > 50, (first / "space.log").read_text(errors="replace")
    before = bucket_files(bucket)

    second = tmp_path / "second"  # a fresh local disk: the database starts empty
    second.mkdir()
    with running_space(second, space_env(second, BUCKET_DIR=str(bucket), **admin)) as space:
        token = httpx.post(f"{space.url}/auth/token", data=ADMIN).json()["access_token"]
        history: set[str] = set()
        while True:
            page = httpx.get(
                f"{space.url}/predictions",
                params={"limit": 1000, "offset": len(history)},
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            history |= {item["request_id"] for item in page["items"]}
            if not page["items"]:
                break
        assert "rows replayed" in space.log()
    missing = set(acknowledged) - history
    assert not missing, f"{len(missing)} acknowledged predictions lost of {len(acknowledged)}"
    # The bucket took appends only: every file is gone (compacted) or grew from its old bytes.
    after = bucket_files(bucket)
    for path, old in before.items():
        assert path not in after or after[path].startswith(old), path


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
