"""The app factory: ``uvicorn api.main:create_app --factory`` or ``python -m api``."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlmodel import Session

from api import SERVICE_NAME, __version__, rest_predict, v2_infer
from api.docs import install_docs
from api.errors import register_error_handlers
from api.evaluation import ModelEvaluator
from api.fast_routes import ServingApp
from api.logs import configure_logging
from api.metrics import HttpMetricsMiddleware, mark_worker_exited
from api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from api.openapi import install_openapi
from api.registry_sync import start_registry_sync
from api.routes import (
    auth,
    drift,
    evaluation,
    metadata,
    models,
    predictions,
    promotion,
    service,
    traffic,
    v2,
)
from api.security import LoginGuard, ensure_admin
from api.settings import Settings
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.trace_replay import open_trace_log
from db.traces import make_trace_writer
from registry.factories import framework_runtimes, mock_runtimes
from registry.registry import ModelRegistry
from serving.dataplane import DataPlane
from serving.drift_monitor import DriftMonitor
from serving.metrics import PrometheusListener
from serving.payload import Limits

logger = logging.getLogger(__name__)

_DESCRIPTION = (
    "Serves registered models from a lazy registry with fallback, records every prediction "
    "in SQL and exposes Prometheus metrics."
)


# Collections of the youngest generation: every 10,000 allocations instead of 700.
_GC_THRESHOLDS = (10_000, 50, 1_000)


def keep_startup_objects_out_of_gc() -> None:
    """Move what start-up built out of the collector's reach, and collect less often.

    The app holds about 120,000 objects once started (FastAPI, pydantic, SQLAlchemy, the
    manifests), and each full collection walked them all, while a request allocates a few
    dozen short-lived ones. Measured with wrk: 20 % more tabular predictions a second, 50 %
    more on the OIP route with its tensor per feature.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    gc.enable()  # create_worker_app disables it for the imports and the start-up


def build_registry(settings: Settings) -> ModelRegistry:
    """The registry of ``MODELS_DIR``: manifests only, nothing loaded yet."""
    runtimes = mock_runtimes if settings.uses_mock_runtimes else framework_runtimes(settings.device)
    return ModelRegistry.from_dir(
        settings.models_dir,
        runtimes,
        default=settings.default_model,
        fallbacks=settings.fallback_models,
        max_loaded=settings.max_loaded_models,
        listener=PrometheusListener(),
    )


def warm_in_background(registry: ModelRegistry, refs: list[str]) -> None:
    """Load ``refs`` on a thread of their own, so that the first request for one does not
    pay for its load (torch's import and an audio model: seconds) and start-up is not held."""
    logger.info("Loading %s in the background (WARM_MODELS)", ", ".join(refs))
    threading.Thread(target=registry.preload, args=(refs,), name="warm-models", daemon=True).start()


def create_served_app() -> FastAPI:
    """The factory ``python -m api`` gives uvicorn: the app of a long-running server process."""
    return create_app(freeze_startup_objects=True)


def create_app(
    settings: Settings | None = None, *, freeze_startup_objects: bool = False
) -> FastAPI:
    """The app; ``freeze_startup_objects`` in a server process (tests build many apps)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        await asyncio.to_thread(upgrade_to_head, settings.database_url)
        # Each part is stopped in reverse order at shutdown, and so is every part already
        # started when a later one fails: a failed start leaves no thread or connection.
        async with AsyncExitStack() as started:
            started.callback(mark_worker_exited)
            engine = make_engine(settings.database_url)
            started.callback(engine.dispose)
            trace_log = None
            if settings.trace_log_dir is not None:
                trace_log = await asyncio.to_thread(open_trace_log, settings.trace_log_dir, engine)
            registry = build_registry(settings)
            started.callback(registry.loader.unload_all)
            writer = make_trace_writer(engine, trace_log)
            started.callback(writer.close)  # and with it the trace log
            writer.start()
            if settings.admin_username and settings.admin_password:
                with Session(engine) as session:
                    await asyncio.to_thread(
                        ensure_admin,
                        session,
                        settings.admin_username,
                        settings.admin_password.get_secret_value(),
                    )
            app.state.engine, app.state.trace_writer, app.state.registry = engine, writer, registry
            sync = app.state.registry_sync = await start_registry_sync(engine, registry, settings)
            started.push_async_callback(sync.close)
            app.state.data_plane = DataPlane(
                registry,
                writer,
                Limits(settings.max_batch_rows, settings.max_audio_seconds),
                commit_timeout=settings.trace_commit_timeout_seconds,
            )
            app.state.evaluator = ModelEvaluator(settings.max_audio_seconds)
            drift_monitor = app.state.drift_monitor = DriftMonitor(
                engine,
                registry.entries,
                interval=settings.drift_interval_seconds,
                window=settings.drift_window,
                min_rows=settings.drift_min_rows,
            )
            drift_monitor.start()
            started.push_async_callback(drift_monitor.close)
            login_guard = app.state.login_guard = LoginGuard.from_settings(settings)
            started.callback(login_guard.close)
            if settings.preloaded_models:
                logger.info("Loading %s before serving (PRELOAD_MODELS)", settings.preload_models)
                await asyncio.to_thread(registry.preload, settings.preloaded_models)
            if settings.warmed_models:
                warm_in_background(registry, settings.warmed_models)
            if freeze_startup_objects:
                keep_startup_objects_out_of_gc()
            logger.info("%s %s ready (env=%s)", SERVICE_NAME, __version__, settings.env)
            yield

    app = ServingApp(
        max_body_bytes=settings.max_body_bytes,
        body_read_timeout=settings.body_read_timeout_seconds,
        title=SERVICE_NAME,
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # install_docs serves both pages with their files, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.started_monotonic = time.monotonic()
    register_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        read_timeout=settings.body_read_timeout_seconds,
    )
    app.add_middleware(RequestIdMiddleware)  # every response gets its id, a crash a JSON 500
    app.add_middleware(HttpMetricsMiddleware)  # outermost: it counts those 500s too
    for route in [*rest_predict.ROUTES, *v2_infer.ROUTES]:
        app.add_fast_route(route)
    for module in (
        service,
        models,
        promotion,
        evaluation,
        drift,
        metadata,
        predictions,
        traffic,
        auth,
        v2,
    ):
        app.include_router(module.router)
    install_openapi(app)
    install_docs(app)
    return app
