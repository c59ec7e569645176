"""Overview: is the service up, which models serve, how busy and how fast it is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboard import charts, ui
from dashboard.api_client import ApiError, LoginRequiredError
from dashboard.service_metrics import parse_metrics, predictions_frame
from dashboard.traffic import totals, traffic_frame

logger = logging.getLogger(__name__)

WINDOWS = ["hour", "day", "week"]
TRAFFIC_LOGIN = "Traffic over the last hour, day or week: log in with an API user to see it."


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


def show_traffic() -> None:
    """Requests, errors, fallbacks and latency over the window chosen, from the trace table."""
    token = ui.token()
    if token is None:
        ui.login_form(TRAFFIC_LOGIN)
        return
    window = st.radio("Window", WINDOWS, horizontal=True, key="overview_window")
    try:
        frame = traffic_frame(ui.client().traffic(token, window))
    except LoginRequiredError:
        ui.log_out()
        ui.login_form(TRAFFIC_LOGIN)
        return
    except ApiError as error:
        ui.show_error(error, "read the traffic")
        return
    total = totals(frame)
    columns = st.columns(5)
    columns[0].metric(f"Requests, last {window}", f"{total.requests:,}")
    columns[1].metric("Errors", f"{total.errors:,}")
    columns[2].metric("Fallbacks", f"{total.fallbacks:,}")
    columns[3].metric("Latency, mean", _readable_ms(total.latency_ms_mean))
    columns[4].metric("Latency, max", _readable_ms(total.latency_ms_max))
    if total.requests == 0:
        st.info(f"No prediction request in the last {window}.")
        return
    left, right = st.columns(2)
    left.plotly_chart(charts.traffic_counts_chart(frame, window))
    right.plotly_chart(charts.traffic_latency_chart(frame, window))


def show_since_start() -> None:
    """Requests by model and outcome since the API started (its counters)."""
    try:
        snapshot = parse_metrics(ui.client().metrics_text(), datetime.now(UTC))
    except ApiError as error:
        ui.show_error(error, "read /metrics")
        return
    except ValueError as error:
        st.error(f"/metrics is not Prometheus text: {error}")
        return
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
    show_traffic()
    st.subheader("Since the API started")
    show_since_start()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _readable_ms(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "no data"
    # Fixed-point: ".3g" turns 8,870 ms into "8.87e+03".
    if milliseconds >= 1000:
        return f"{milliseconds / 1000:.2f} s"
    return f"{milliseconds:.3g} ms" if milliseconds >= 1 else f"{milliseconds:.2f} ms"


main()
