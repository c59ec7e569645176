"""``python -m api``: serve with uvicorn (HOST, PORT, WORKERS...); the app migrates at start."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import tempfile
from typing import TYPE_CHECKING, cast

import uvicorn

from api.http_protocol import ServingHttpProtocol
from api.logs import configure_logging
from api.settings import Settings, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def main() -> None:
    settings = load_settings("python -m api")
    configure_logging(settings.log_level)
    # Must be set before an ML library starts its thread pool: one thread per prediction
    # serves concurrent requests best; OpenMP's spinning threads oversubscribe small machines.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if settings.secret_key is None:
        # Without SECRET_KEY (dev, test): one random key for all workers, so that a token
        # issued by one worker is accepted by the others. Tokens end with the process.
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(48)
    metrics_dir = None
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Must be set before any worker imports prometheus_client: each worker then
        # writes its samples here and /metrics adds them up.
        metrics_dir = tempfile.mkdtemp(prefix="mldeploy-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        serve(settings)
    finally:
        if metrics_dir:
            # The samples are this run's alone: a folder per start would pile up in /tmp.
            shutil.rmtree(metrics_dir, ignore_errors=True)


def serve(settings: Settings) -> None:
    uvicorn.run(
        "api.__main__:create_worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # A partial, not a class made here: uvicorn pickles it for each worker it spawns.
        http=cast(
            "type[asyncio.Protocol]",
            functools.partial(
                ServingHttpProtocol, header_timeout=settings.header_read_timeout_seconds
            ),
        ),
        log_level=settings.log_level,
        # Every prediction is already traced in the database; an access log line per
        # request would double that cost for no new information.
        access_log=False,
        proxy_headers=True,
    )


def create_worker_app() -> FastAPI:
    """The factory uvicorn calls in each server process (each worker when WORKERS > 1)."""
    die_with_parent()
    # No collection while start-up imports and builds its ~120,000 long-lived objects (a
    # sixth of the import time went to collections that freed nothing): the app collects
    # once and freezes them when it has started (keep_startup_objects_out_of_gc).
    gc.disable()
    # Imported here: the supervising process serves nothing and needs none of it.
    from api.main import create_served_app

    return create_served_app()


def die_with_parent() -> None:
    """In a worker uvicorn spawned: get SIGTERM when the supervising process dies.

    A supervisor killed by SIGKILL cannot stop its workers; they lived on, holding the port,
    and the next start failed with "Address already in use". Linux only (a no-op
    elsewhere), and only in a worker: with WORKERS=1 this process is the server itself.
    """
    parent = multiprocessing.parent_process()
    if parent is None or sys.platform != "linux":
        return
    # NOTE: the signal comes when the parent's *thread* that spawned us ends; uvicorn
    # spawns (and respawns) its workers from its main thread.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return
    if os.getppid() != parent.pid:
        # The parent died before prctl: no signal will come, and nobody supervises us.
        raise SystemExit(f"worker {os.getpid()}: parent {parent.pid} is gone; exiting")


if __name__ == "__main__":
    main()
