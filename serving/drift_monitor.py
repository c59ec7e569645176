"""Drift, off the request path: recent traced inputs of each model version against its profile.

Every ``interval`` seconds a task reads, on a thread, the last ``window`` rows answered by each
version that has a reference profile (one indexed query each), computes the PSI of every
feature and of the predicted labels, and sets the gauges. Predictions do no work for it: it
reads what the trace table already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client import Gauge
from sqlalchemy import Engine

from db.drift_window import recent_window
from ml.drift import PSI_ALERT, PSI_WARN, ReferenceProfile, feature_psi, labels_psi, read_profile
from ml.manifest import ModelManifest
from registry.catalogue import ModelEntry
from serving.metrics import NAMESPACE

logger = logging.getLogger(__name__)

FEATURE_DRIFT = Gauge(
    "feature_drift_psi",
    "PSI of each input feature over the recent window against the reference profile.",
    ["model", "version", "feature"],
    namespace=NAMESPACE,
    multiprocess_mode="livemostrecent",
)
PREDICTION_DRIFT = Gauge(
    "prediction_drift_psi",
    "PSI of the predicted labels over the recent window against the reference profile.",
    ["model", "version"],
    namespace=NAMESPACE,
    multiprocess_mode="livemostrecent",
)


def level(psi: float) -> str:
    """``stable`` under 0.1, ``warn`` under 0.25, else ``alert``."""
    if psi >= PSI_ALERT:
        return "alert"
    return "warn" if psi >= PSI_WARN else "stable"


@dataclass(slots=True)
class DriftReport:
    """One version's drift figures; ``problem`` says why there are none."""

    model: str
    version: str
    window_requests: int
    window_rows: int
    since: datetime | None
    until: datetime | None
    features: dict[str, float] = field(default_factory=dict)
    prediction_psi: float | None = None
    problem: str | None = None


class DriftMonitor:
    """Measures drift of every profiled version on a schedule, and on demand."""

    def __init__(
        self,
        engine: Engine,
        entries: Callable[[], Iterable[ModelEntry]],
        *,
        interval: float,
        window: int,
        min_rows: int,
    ) -> None:
        self._engine, self._entries = engine, entries
        self.interval, self.window, self.min_rows = interval, window, min_rows
        self._profiles: dict[tuple[str, str], ReferenceProfile] = {}
        self._lock = threading.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="drift-monitor")

    async def close(self) -> None:
        """Stop after the measurement in progress (its thread uses the engine)."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    def measure(self, entry: ModelEntry) -> DriftReport:
        """Measure ``entry`` now and publish its gauges (blocking: call it on a thread)."""
        manifest = entry.manifest
        window = recent_window(self._engine, manifest.name, manifest.version, self.window)
        report = DriftReport(
            manifest.name,
            manifest.version,
            window.requests,
            len(window.rows),
            window.since,
            window.until,
        )
        try:
            profile = self._profile(manifest, entry.model_dir)
        except (OSError, ValueError) as error:
            report.problem = f"its reference profile cannot be read: {error}"
            return report
        if profile is None:
            report.problem = f"{manifest.ref} has no reference profile (packaged before drift)"
            return report
        if len(window.rows) < self.min_rows:
            report.problem = (
                f"{len(window.rows)} rows served in the window, fewer than DRIFT_MIN_ROWS "
                f"({self.min_rows})"
            )
            return report
        for name, reference in profile.features.items():
            values = [row.get(name) for row in window.rows if isinstance(row, dict)]
            report.features[name] = feature_psi(reference, values)
            FEATURE_DRIFT.labels(manifest.name, manifest.version, name).set(report.features[name])
        report.prediction_psi = labels_psi(profile.labels, window.labels)
        PREDICTION_DRIFT.labels(manifest.name, manifest.version).set(report.prediction_psi)
        return report

    def measure_all(self) -> None:
        for entry in list(self._entries()):
            if entry.manifest.reference_profile is not None:
                self.measure(entry)

    def _profile(self, manifest: ModelManifest, model_dir: Path) -> ReferenceProfile | None:
        stored = manifest.reference_profile
        if stored is None:
            return None
        key = (manifest.ref, stored.sha256)
        with self._lock:  # the schedule's thread and a route's thread may ask at once
            if key not in self._profiles:
                self._profiles[key] = read_profile(model_dir / stored.file, stored.sha256)
            return self._profiles[key]

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            if self._stopping.is_set():
                return
            try:
                await asyncio.to_thread(self.measure_all)
            except Exception:  # noqa: BLE001 - a database outage must not end the schedule
                logger.warning("Drift measurement failed", exc_info=True)
