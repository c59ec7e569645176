"""A real ``mlflow server`` for end-to-end tests: SQLite backend, artifacts proxied to a folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.live_server import answers, free_port, running_process


@contextmanager
def running_mlflow_server(workdir: Path) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, its state in ``workdir``; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        # Its job runner (GenAI evaluations) starts seven more processes, which outlive SIGTERM.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with running_process(
        command,
        cwd=workdir,
        env=environment,
        log_path=workdir / "mlflow-server.log",
        is_up=lambda: answers(f"{url}/health"),
    ):
        yield url
