"""``python -m ray_serve`` (``make ray-run``): the API as a Ray Serve application.

Joins the cluster of ``RAY_ADDRESS``, or starts a local one (a head of ``REPLICAS`` CPUs)
that ends with this process. Deploys ``REPLICAS`` replicas (default 2) behind Serve's proxy
on ``HOST``:``PORT``; every other setting is read as ``python -m api`` reads it. Stays in the
foreground: Ctrl-C or SIGTERM (``make ray-stop``) deletes the application, and stops the
local cluster when this process started it.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from pathlib import Path

import ray
from pydantic import SecretStr
from ray import serve

from api.logs import configure_logging
from api.settings import Settings, load_settings
from db.migrate import upgrade_to_head
from ray_serve.deployment import (
    APP_NAME,
    SqliteWithReplicasError,
    application,
    http_options,
)
from ray_serve.proxy import PROXY_ENVIRONMENT

PROGRAM = "python -m ray_serve"
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
# A local head's object store: the app passes no large objects through Ray.
_LOCAL_OBJECT_STORE_BYTES = 100 * 1024 * 1024


def main() -> None:
    settings = shared_secret(load_settings(PROGRAM))
    configure_logging(settings.log_level)
    replicas = _replicas()
    try:
        app = application(settings, replicas)
    except SqliteWithReplicasError as error:
        sys.exit(f"{PROGRAM}: {error}")
    # Here, once: replicas on several hosts would race each other's migrations.
    upgrade_to_head(settings.database_url)
    address = os.environ.get("RAY_ADDRESS") or None
    # Inherited by the processes of a local cluster (its raylet, then the replicas and the
    # proxy): our packages on the path, and the proxy's settings (ray_serve.proxy). On a
    # cluster of RAY_ADDRESS, its nodes must have been started with both.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO_ROOT, os.getenv("PYTHONPATH")]))
    for name, value in PROXY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # One thread per prediction serves concurrent requests best (as in `python -m api`).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if address is None:
        ray.init(num_cpus=replicas, object_store_memory=_LOCAL_OBJECT_STORE_BYTES)
    else:
        ray.init(address=address)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        serve.start(http_options=http_options(settings), proxy_location="HeadOnly")
        serve.run(app, name=APP_NAME, route_prefix="/")
        print(
            f"{PROGRAM}: {replicas} replicas on http://{settings.host}:{settings.port}", flush=True
        )
        stopping.wait()
    finally:
        if address is not None:
            serve.delete(APP_NAME)
        # A local cluster ends here with its replicas (a Ctrl-C in the terminal may have
        # stopped its raylet already: a call to Serve would then wait forever).
        ray.shutdown()


def shared_secret(settings: Settings) -> Settings:
    """Without SECRET_KEY (dev, test): one random key for every replica, so that a token
    issued by one is accepted by the others (``python -m api`` does so for its workers)."""
    if settings.secret_key is not None:
        return settings
    return settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48))})


def _replicas() -> int:
    text = os.environ.get("REPLICAS", "2")
    if not text.isdigit() or int(text) < 1:
        sys.exit(f"{PROGRAM}: REPLICAS must be a whole number of at least 1, got {text!r}")
    return int(text)


if __name__ == "__main__":
    main()
