"""The replica's ``mldeploy_*`` series, copied into Ray's metrics export.

Under Serve, ``GET /metrics`` answers whichever replica the proxy picked, so its counters
would jump between replicas' values. Instead every replica copies its prometheus_client
samples into ``ray.serve.metrics`` gauges every ``EXPORT_INTERVAL_SECONDS``; Ray adds the
``replica``, ``deployment`` and ``application`` tags and each node's metrics agent serves them
to Prometheus (``ray start --metrics-export-port``), prefixed ``ray_``:
``ray_mldeploy_predictions_total{replica="…", model="…", …}``. Each replica's series are its
own cumulative values, so ``sum(rate(...))`` over replicas counts each event once. Counters
and histograms arrive typed as gauges; ``rate`` and ``histogram_quantile`` read them alike.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import cast

from prometheus_client import REGISTRY
from ray.serve.metrics import Gauge

from serving.metrics import NAMESPACE

logger = logging.getLogger(__name__)

EXPORT_INTERVAL_SECONDS = 2.0
_PREFIX = NAMESPACE + "_"


class MetricsExport:
    """Copies this process's ``mldeploy_*`` samples into Ray gauges of the same names."""

    def __init__(self) -> None:
        self._gauges: dict[str, Gauge] = {}

    def copy_once(self) -> int:
        """Copy every sample once; returns how many were copied."""
        copied = 0
        for family in REGISTRY.collect():
            if not family.name.startswith(_PREFIX):
                continue
            for sample in family.samples:
                if sample.name.endswith("_created"):  # a timestamp, not a measurement
                    continue
                self._gauge(sample.name, family.documentation, sample.labels).set(
                    sample.value, tags=sample.labels
                )
                copied += 1
        return copied

    def _gauge(self, name: str, documentation: str, labels: dict[str, str]) -> Gauge:
        gauge = self._gauges.get(name)
        if gauge is None:
            # Ray annotates tag_keys as tuple[str]; it takes any number of keys.
            tag_keys = cast("tuple[str]", tuple(labels))
            gauge = self._gauges[name] = Gauge(name, documentation, tag_keys=tag_keys)
        return gauge


def start_metrics_export() -> threading.Thread:
    """Copy the samples every few seconds, on a daemon thread, for the replica's life."""
    export = MetricsExport()

    def loop() -> None:
        while True:
            time.sleep(EXPORT_INTERVAL_SECONDS)
            try:
                export.copy_once()
            except Exception:  # a bad sample must not end the export of all others
                logger.exception("Copying the metrics into Ray's export failed")

    thread = threading.Thread(target=loop, name="ray-metrics-export", daemon=True)
    thread.start()
    return thread
