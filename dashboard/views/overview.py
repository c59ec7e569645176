"""Overview: is the service up, which models serve, how busy and how fast it is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboard import charts, ui
from dashboard.api_client import ApiError
from dashboard.service_metrics import (
    MetricsSnapshot,
    history_frame,
    latency_percentiles_ms,
    parse_metrics,
    predictions_frame,
)

logger = logging.getLogger(__name__)

HISTORY_KEY = "metrics_history"


def show_service(metadata: dict[str, Any], models: dict[str, Any]) -> None:
    try:
        ready = ui.client().ready()
    except ApiError as error:
        ready = {"status": f"not ready ({error})", "loaded_models": []}
    first, second, third, fourth = st.columns(4)
    first.metric("Status", ready["status"])
    second.metric("Version", f"{metadata['version']} ({metadata['env']})")
    third.metric("Uptime", _duration(metadata["uptime_seconds"]))
    fourth.metric("Models loaded", f"{len(ready['loaded_models'])} of {len(models['models'])}")
    st.markdown(
        f"**Default model:** `{models['default_model'] or 'none'}` · "
        f"**Fallback models:** {', '.join(f'`{m}`' for m in models['fallback_models']) or 'none'}"
        f" · **Loaded:** {', '.join(f'`{m}`' for m in ready['loaded_models']) or 'none yet'}"
    )


def show_failed_models(models: dict[str, Any]) -> None:
    failed = [
        (model["name"], version)
        for model in models["models"]
        for version in model["versions"]
        if version["status"] == "failed"
    ]
    for name, version in failed:
        st.error(
            f"**{name}@{version['version']} failed to load:** {version['error']}",
            icon=":material/error:",
        )
    for problem in models["problems"]:
        st.warning(f"**Skipped in the model store:** {problem}", icon=":material/warning:")
    if not failed:
        st.caption("No model has failed to load.")


def take_snapshot() -> MetricsSnapshot | None:
    api = ui.client()
    try:
        return parse_metrics(api.metrics_text(), datetime.now(UTC))
    except ApiError as error:
        ui.show_error(error, "read /metrics")
    except ValueError as error:
        st.error(f"/metrics is not Prometheus text: {error}")
    return None


def remember(snapshot: MetricsSnapshot) -> list[MetricsSnapshot]:
    """The session's recent snapshots of this API, ``snapshot`` last."""
    key = f"{HISTORY_KEY}:{ui.settings().base_url}"
    history: list[MetricsSnapshot] = st.session_state.setdefault(key, [])
    history.append(snapshot)
    del history[: -ui.settings().dashboard_history_points]
    return history


def show_live_metrics() -> None:
    snapshot = take_snapshot()
    if snapshot is None:
        return
    history = remember(snapshot)
    p50, p95 = latency_percentiles_ms(snapshot.latency_buckets)
    first, second, third, fourth = st.columns(4)
    first.metric("Prediction requests", f"{snapshot.total_predictions:,.0f}")
    second.metric("Failed", f"{snapshot.failed_predictions:,.0f}")
    third.metric("Fallbacks", f"{snapshot.fallbacks:,.0f}")
    fourth.metric("Latency p50 / p95", _latency_text(p50, p95))
    frame = history_frame(history)
    if frame.empty:
        st.info(
            "Rates and recent latency appear from the second reading of /metrics: "
            "refresh, or turn auto-refresh on.",
            icon=":material/hourglass_top:",
        )
    else:
        left, right = st.columns(2)
        left.plotly_chart(charts.rates_chart(frame))
        right.plotly_chart(charts.latency_history_chart(frame))
    outcomes = predictions_frame(snapshot)
    if outcomes.empty:
        st.info("No prediction requests since the API started.")
    else:
        st.plotly_chart(charts.outcomes_chart(outcomes))


def main() -> None:
    st.title("Overview")
    api = ui.client()
    metadata = ui.fetch("read the service metadata", api.metadata)
    models = ui.fetch("list the models", api.models)
    show_service(metadata, models)
    show_failed_models(models)
    st.subheader("Traffic")
    refresh = ui.settings().dashboard_refresh_seconds
    if st.toggle(f"Auto-refresh every {refresh:g} s", key="overview_auto_refresh"):
        st.fragment(run_every=refresh)(show_live_metrics)()
    else:
        st.button("Refresh", icon=":material/refresh:")
        show_live_metrics()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _latency_text(p50: float | None, p95: float | None) -> str:
    if p50 is None or p95 is None:
        return "no data"
    return f"{_readable_ms(p50)} / {_readable_ms(p95)}"


def _readable_ms(milliseconds: float) -> str:
    # Fixed-point: ".3g" turns 8,870 ms into "8.87e+03".
    if milliseconds >= 1000:
        return f"{milliseconds / 1000:.2f} s"
    return f"{milliseconds:.3g} ms" if milliseconds >= 1 else f"{milliseconds:.2f} ms"


main()
