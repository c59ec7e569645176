"""``python -m api`` with several workers: they die with their parent, and leave nothing behind.

A supervisor killed by SIGKILL runs no clean-up: its workers used to live on, holding the
port, and the next start failed with "Address already in use".
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.helpers import copy_model
from tests.live_server import LiveServer, live_api, server_env, wait_until_gone

pytestmark = pytest.mark.e2e

_WORKERS = 2


def children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` (from /proc: psutil is not installed), by command."""
    found = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
            command = (stat_path.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # exited meanwhile
        # The command in parentheses may hold spaces; state and ppid come right after it.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(stat_path.parent.name)] = command
    return found


def workers_of(server: LiveServer, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        workers = [
            pid for pid, command in children(server.process.pid).items() if "spawn_main" in command
        ]
        if len(workers) == _WORKERS or time.monotonic() > deadline:
            return workers
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As uvicorn binds: SO_REUSEADDR, so only a listening socket makes this fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def workers_env(tmp_path: Path) -> dict[str, str]:
    """A server of ``_WORKERS`` workers over attrition-logreg alone (mock runtime, no fallback)."""
    store = tmp_path / "models"
    copy_model(store, "attrition-logreg")
    (tmp_path / "tmp").mkdir()
    return server_env(
        store,
        tmp_path,
        ENV="test",
        FALLBACK_MODEL="",
        WORKERS=str(_WORKERS),
        # Its own temporary folder: what the server leaves there is seen.
        TMPDIR=str(tmp_path / "tmp"),
    )


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    with live_api(tmp_path, workers_env(tmp_path)) as server:
        workers = workers_of(server)
        assert len(workers) == _WORKERS, children(server.process.pid)
        everything = list(children(server.process.pid))  # the resource tracker too
        port = int(server.env["PORT"])
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        survivors = wait_until_gone(everything, timeout=10)
        for pid in survivors:  # not to leave them to the next tests
            os.kill(pid, signal.SIGKILL)
        assert survivors == [], server.log()
        assert port_is_free(port)


def test_a_stopped_server_leaves_no_metrics_folder(tmp_path: Path) -> None:
    env = workers_env(tmp_path)
    with live_api(tmp_path, env) as server:
        assert len(workers_of(server)) == _WORKERS
        assert list((tmp_path / "tmp").glob("mldeploy-metrics-*")) != []
    # live_api stopped it with SIGTERM, as supervisord and docker stop do.
    assert server.process.returncode == 0, server.log()
    assert list((tmp_path / "tmp").glob("mldeploy-metrics-*")) == []
