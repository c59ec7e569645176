"""``make run`` as a newcomer uses it: closing the terminal stops the API and the dashboard.

Closing a terminal sends SIGHUP to its foreground process group (make and the launcher); the
API and the dashboard run in sessions of their own, so only the launcher can stop them. Were
they left running, the next ``make run`` would find their ports taken.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.live_server import ROOT, answers, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

START_TIMEOUT = 90.0
STOP_TIMEOUT = 6.0


def _port_is_free(port: int) -> bool:
    """True when a server could listen on ``port`` (as the servers do: SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def _started_pids(log: str) -> list[int]:
    """The pids honcho reports for its processes (each leads a session of its own)."""
    return [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", log)]


def _kill_groups(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sighup_to_make_run_frees_both_ports(tmp_path: Path) -> None:
    api_port, dashboard_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ENV": "dev",
        "PORT": str(api_port),
        "DASHBOARD_PORT": str(dashboard_port),
        "API_URL": f"http://127.0.0.1:{api_port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'traces.db'}",
        "PRELOAD_MODELS": "",
    }
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log_file:
        # `-o install`: the virtualenv is this one; never reinstall it from a test.
        make = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "install", "run"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's job is
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (
            answers(f"http://127.0.0.1:{api_port}/health")
            and answers(f"http://127.0.0.1:{dashboard_port}/_stcore/health", "ok")
        ):
            assert make.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.2)

        os.killpg(make.pid, signal.SIGHUP)  # what closing the terminal does

        deadline = time.monotonic() + STOP_TIMEOUT
        while not (_port_is_free(api_port) and _port_is_free(dashboard_port)):
            assert time.monotonic() < deadline, (
                f"ports still taken {STOP_TIMEOUT} s after SIGHUP:\n"
                + log_path.read_text(errors="replace")
            )
            time.sleep(0.1)
    finally:
        _kill_groups(_started_pids(log_path.read_text(errors="replace")))
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        make.wait()
