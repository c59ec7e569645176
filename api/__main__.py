"""``python -m api``: serve with uvicorn (HOST, PORT, WORKERS...); the app migrates at start."""

from __future__ import annotations

import os
import secrets
import tempfile

import uvicorn

from api.logs import configure_logging
from api.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    # Must be set before an ML library starts its thread pool: one thread per prediction
    # serves concurrent requests best; OpenMP's spinning threads oversubscribe small machines.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if settings.secret_key is None:
        # Without SECRET_KEY (dev, test): one random key for all workers, so that a token
        # issued by one worker is accepted by the others. Tokens end with the process.
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(48)
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Must be set before any worker imports prometheus_client: each worker then
        # writes its samples here and /metrics adds them up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mldeploy-metrics-")
    uvicorn.run(
        "api.main:create_served_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        # Every prediction is already traced in the database; an access log line per
        # request would double that cost for no new information.
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
