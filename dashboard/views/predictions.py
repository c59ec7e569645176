"""Predictions: the traced history (personal data, so behind a login), with charts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from dashboard import charts, ui
from dashboard.api_client import ApiError, LoginRequiredError
from dashboard.history import OUTCOMES, history_frame, summarise

logger = logging.getLogger(__name__)

HISTORY_LOGIN = (
    "The prediction history holds personal data: log in with an API user "
    "(the admin of ADMIN_USERNAME, or a viewer)."
)

ALL = "all"
PERIODS = {
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "all time": None,
}
FALLBACK_FILTERS = {"all requests": None, "fallbacks only": True, "no fallbacks": False}
# The error next to the outcome: last, it was off-screen on a laptop.
TABLE_COLUMNS = [
    "received_at",
    "model",
    "outcome",
    "error",
    "label",
    "fallback",
    "latency_ms",
    "rows",
    "requested",
    "request_id",
]


def filters(model_names: list[str]) -> dict[str, Any]:
    """The query of ``GET /predictions`` chosen in the sidebar."""
    st.sidebar.subheader("Filters")
    model = st.sidebar.selectbox("Model", [ALL, *model_names], key="history_model")
    outcome = st.sidebar.selectbox("Outcome", [ALL, *OUTCOMES], key="history_outcome")
    fallback = st.sidebar.selectbox("Fallback", list(FALLBACK_FILTERS), key="history_fallback")
    period = st.sidebar.selectbox("Period", list(PERIODS), index=1, key="history_period")
    limit = st.sidebar.slider("Most recent requests", 50, 1000, 500, step=50, key="history_limit")
    since = PERIODS[period]
    return {
        "model": None if model == ALL else model,
        "outcome": None if outcome == ALL else outcome,
        "fallback": FALLBACK_FILTERS[fallback],
        "since": (datetime.now(UTC) - since).isoformat() if since else None,
        "limit": limit,
    }


def history_page(token: str, query: dict[str, Any]) -> dict[str, Any] | None:
    """The page of history, or None when the token is refused (then the login shows again)."""
    try:
        return ui.client().predictions(token, **query)
    except LoginRequiredError:
        ui.log_out()
        st.warning("Your session has expired: log in again.", icon=":material/lock_clock:")
        ui.login_form(HISTORY_LOGIN)
    except ApiError as error:
        ui.show_error(error, "read the prediction history")
    return None


def show_history(page: dict[str, Any]) -> None:
    frame = history_frame(page["items"])
    summary = summarise(frame)
    first, second, third, fourth = st.columns(4)
    first.metric("Matching requests", f"{page['total']:,}")
    second.metric("Failed (shown)", summary.failed)
    third.metric("Fallbacks (shown)", summary.fallbacks)
    fourth.metric(
        "Median latency",
        "—" if summary.median_latency_ms is None else f"{summary.median_latency_ms:.3g} ms",
    )
    if page["total"] > len(frame):
        st.caption(f"Charts cover the {len(frame)} most recent of {page['total']} requests.")
    left, right = st.columns(2)
    left.plotly_chart(ui.painted(charts.volume_chart(frame)))
    right.plotly_chart(charts.outcome_timeline_chart(frame))
    left, right = st.columns(2)
    left.plotly_chart(ui.painted(charts.label_chart(frame)))
    right.plotly_chart(ui.painted(charts.latency_histogram(frame)))
    st.subheader("Recent requests")
    # Times as text: Arrow's conversion of zoned timestamps warns, and UTC says which zone.
    table = frame[TABLE_COLUMNS].assign(
        received_at=frame["received_at"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    st.dataframe(table, hide_index=True)


def main() -> None:
    st.title("Prediction history")
    token = ui.token()
    if token is None:
        ui.login_form(HISTORY_LOGIN)
        st.stop()
    if st.sidebar.button("Log out", icon=":material/logout:"):
        ui.log_out()
        st.rerun()
    names = [model["name"] for model in ui.fetch("list the models", ui.client().models)["models"]]
    page = history_page(token, filters(names))
    if page is None:
        st.stop()
    if page["total"] == 0:
        st.info(
            "No predictions yet match these filters. Send one from **Try a model**, or "
            "`POST /predict`.",
            icon=":material/inbox:",
        )
        st.stop()
    show_history(page)


main()
