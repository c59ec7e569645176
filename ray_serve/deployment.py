"""The Serve deployment: one replica is one process running the app's lifespan."""

from __future__ import annotations

import os
from typing import Any, cast

import ray
from ray import serve
from ray.serve.config import HTTPOptions
from ray.serve.schema import LoggingConfig
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp

from api.main import create_app
from api.settings import Settings
from ray_serve.metrics_export import start_metrics_export

APP_NAME = "mldeploy"
DEPLOYMENT_NAME = "api"


class SqliteWithReplicasError(ValueError):
    """Each replica would write its own SQLite file, or fight over one file's lock."""


def check_database(settings: Settings, replicas: int) -> None:
    """Refuse SQLite for more than one replica: the replicas must share one database."""
    if replicas > 1 and make_url(settings.database_url).get_backend_name() == "sqlite":
        raise SqliteWithReplicasError(
            f"REPLICAS={replicas} needs one database for all replicas: set DATABASE_URL to a "
            "PostgreSQL database (postgresql://user:password@host/db); SQLite serves one "
            "replica only (REPLICAS=1)"
        )


@serve.deployment(
    name=DEPLOYMENT_NAME,
    # One process, one event loop: a replica uses about one core (the data plane's own
    # threads wait on the database, not on the CPU).
    ray_actor_options={"num_cpus": 1},
    # The app has its own limits (body size, batch rows, the trace writer's queue).
    max_ongoing_requests=64,
    health_check_period_s=2,
    health_check_timeout_s=10,
    # Every prediction is traced in the database already (as under `python -m api`).
    logging_config=LoggingConfig(enable_access_log=False),
)
@serve.ingress()
class ApiReplica:
    """Builds the app in the replica (``__serve_build_asgi_app__``) so that each one has
    its own engine, registry and writer; Serve runs the app's lifespan around it."""

    def __init__(self, settings: Settings, workdir: str) -> None:
        # The same relative paths (.env, MODELS_DIR, a SQLite file) as `python -m api`
        # started in ``workdir``.
        os.chdir(workdir)
        self._settings = settings

    def __serve_build_asgi_app__(self) -> ASGIApp:
        app = create_app(self._settings, freeze_startup_objects=True)
        # /metadata names the replica that answered.
        app.state.ray_replica = {
            "ray_replica_id": serve.get_replica_context().replica_tag,
            "ray_node_id": ray.get_runtime_context().get_node_id(),
        }
        start_metrics_export()
        return app

    async def check_health(self) -> None:
        """The data plane's readiness, as /ready answers it: Serve replaces a replica that
        fails it (and sends it no traffic before its first success)."""
        app: Any = self.app  # type: ignore[attr-defined]  # set by @serve.ingress
        problem = await app.state.data_plane.not_ready_reason()
        if problem is not None:
            raise RuntimeError(f"not ready: {problem}")


def application(settings: Settings, replicas: int) -> serve.Application:
    """The application of ``replicas`` replicas of the app configured by ``settings``."""
    check_database(settings, replicas)
    # The decorators' annotations lose the Deployment they return.
    deployment = cast(serve.Deployment, ApiReplica)
    return deployment.options(num_replicas=replicas).bind(settings, os.getcwd())


def http_options(settings: Settings) -> HTTPOptions:
    """The proxy listens where `python -m api` would (HOST, PORT)."""
    return HTTPOptions(host=settings.host, port=settings.port)
