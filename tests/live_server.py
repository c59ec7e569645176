"""Run the project's programs for real on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers import ADMIN

ROOT = Path(__file__).resolve().parents[1]


def server_env(store: Path, workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of ``python -m api`` over ``store``, for ``live_api``.

    The real runtimes (ENV=dev), a SQLite database in ``workdir``, the tests' admin, and
    attrition-gbm as the fallback; ``extra`` adds variables or overrides these.
    """
    return {
        "ENV": "dev",
        "DATABASE_URL": f"sqlite:///{workdir / 'traces.db'}",
        "MODELS_DIR": str(store),
        "ADMIN_USERNAME": ADMIN["username"],
        "ADMIN_PASSWORD": ADMIN["password"],
        "FALLBACK_MODEL": "attrition-gbm",
        **extra,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(url: str, expected: str | None = None) -> bool:
    """True when ``url`` answers 200 (with ``expected`` as its body, when given)."""
    try:
        response = httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and (expected is None or response.text == expected)


def is_running(pid: int) -> bool:
    """True while process ``pid`` exists and has not exited (Linux: read from /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (a container's PID 1 may never reap it)


def wait_until_gone(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` runs, for ``timeout`` seconds at most; those still running."""
    watched = list(pids)
    deadline = time.monotonic() + timeout
    while any(map(is_running, watched)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in watched if is_running(pid)]


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_process(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    is_up: Callable[[], bool],
    timeout: float = 60.0,
    stop_timeout: float = 15.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command``, wait until ``is_up()``, yield it, then stop it."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while not is_up():
            log = log_path.read_text(errors="replace")
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[0]} did not come up within {timeout} s:\n{log}")
            time.sleep(0.1)
        yield process
    finally:
        stop_process(process, stop_timeout)


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def live_api(workdir: Path, env: dict[str, str], *, timeout: float = 60.0) -> Iterator[LiveServer]:
    """Run ``python -m api`` with ``env`` on top of a minimal environment; stop it afterwards.

    ``env`` should at least name DATABASE_URL and MODELS_DIR; HOST and PORT are chosen here.
    """
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(workdir)),
        "PYTHONPATH": str(ROOT),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "info",
        **env,
    }
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / f"api-{port}.log"
    with running_process(
        [sys.executable, "-m", "api"],
        cwd=workdir,
        env=environment,
        log_path=log_path,
        is_up=lambda: answers(f"{url}/health"),
        timeout=timeout,
    ) as process:
        yield LiveServer(url, process, log_path, environment)
