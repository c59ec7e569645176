"""deploy/k8s's pod run here as the kubelet would: its init container, then its command, with
the ConfigMap's settings and a Secret's keys; every probe path must answer 200."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.k8s_manifests import K8S_DIR, container, find, load_kustomization
from tests.live_server import ROOT, answers, free_port, running_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OBJECTS = load_kustomization(K8S_DIR)
POD_SPEC = find(OBJECTS, "Deployment")["spec"]["template"]["spec"]
API = container(POD_SPEC, "api")
(MIGRATE,) = POD_SPEC["initContainers"]
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def pod_env(database_url: str, port: int) -> dict[str, str]:
    """The ConfigMap's data and the Secret's keys; ``python`` is this interpreter, as on the
    image's PATH. The port is a free one: the manifest's (checked equal to the container
    port by the unit tests) may be taken on a shared machine."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        **find(OBJECTS, "ConfigMap")["data"],
        "PORT": str(port),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "METRICS_TOKEN": secrets.token_urlsafe(24),
        "DATABASE_URL": database_url,
    }


def test_the_pod_starts_answers_its_probes_and_drains(database_url: str, tmp_path: Path) -> None:
    env = pod_env(database_url, free_port())
    migrate = subprocess.run(
        MIGRATE["command"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if database_url.startswith("sqlite"):
        # Refused: every replica would keep its own file. The app migrates SQLite itself.
        assert migrate.returncode == 1
        assert "Replicas need one PostgreSQL" in migrate.stderr
    else:
        assert migrate.returncode == 0, migrate.stderr
    url = f"http://127.0.0.1:{env['PORT']}"
    grace = POD_SPEC["terminationGracePeriodSeconds"]
    with running_process(
        API["command"],
        cwd=ROOT,  # the image's WORKDIR: MODELS_DIR=models is the store it ships
        env=env,
        log_path=tmp_path / "api.log",
        is_up=lambda: answers(f"{url}/health"),
        timeout=API["startupProbe"]["periodSeconds"] * API["startupProbe"]["failureThreshold"],
        stop_timeout=grace,
    ) as process:
        for probe in PROBES:
            response = httpx.get(url + API[probe]["httpGet"]["path"], timeout=5)
            assert response.status_code == 200, (probe, response.text)
        metadata = httpx.get(f"{url}/metadata", timeout=5).json()
        assert metadata["hostname"] == socket.gethostname()
        # PRELOAD_MODELS: loaded before the first probe answered.
        models = httpx.get(f"{url}/models", timeout=5).json()["models"]
        loaded = {model["name"] for model in models if model["status"] == "loaded"}
        assert set(env["PRELOAD_MODELS"].split(",")) <= loaded
        token = {"Authorization": f"Bearer {env['METRICS_TOKEN']}"}
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 401
        assert httpx.get(f"{url}/metrics", headers=token, timeout=5).status_code == 200
        started = time.monotonic()
        process.terminate()
        # uvicorn shuts down gracefully, then raises the SIGTERM it caught again.
        assert process.wait(timeout=grace) == -signal.SIGTERM
    assert time.monotonic() - started < grace
    assert "Application shutdown complete" in (tmp_path / "api.log").read_text()
