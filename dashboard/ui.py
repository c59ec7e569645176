"""What every page shares: settings, the API client, error messages, the login token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import plotly.graph_objects as go
import streamlit as st

from dashboard.api_client import (
    ApiClient,
    ApiError,
    ApiResponseError,
    ApiUnavailableError,
    LoginRequiredError,
)
from dashboard.colours import model_colours, paint
from dashboard.settings import DashboardSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_KEY = "api_token"
USERNAME_KEY = "api_username"
EVALUATION_CACHE_SECONDS = 600
MODEL_NAMES_CACHE_SECONDS = 30


def settings() -> DashboardSettings:
    # Read on every run: cheap, and a changed API_URL applies without a restart.
    return DashboardSettings()


@st.cache_resource(show_spinner=False)
def _shared_client(
    base_url: str, timeout: float, evaluation_timeout: float, metrics_token: str | None
) -> ApiClient:
    # One connection pool per API for every session of this server.
    return ApiClient(
        base_url,
        timeout=timeout,
        evaluation_timeout=evaluation_timeout,
        metrics_token=metrics_token,
    )


def client() -> ApiClient:
    config = settings()
    token = config.metrics_token.get_secret_value() if config.metrics_token else None
    return _shared_client(
        config.base_url,
        config.dashboard_timeout_seconds,
        config.dashboard_evaluation_timeout_seconds,
        token,
    )


def show_error(error: ApiError, what: str) -> None:
    """The error as a message that says what failed and what to do."""
    if isinstance(error, ApiUnavailableError):
        st.error(
            f"**The API is down or unreachable**, so this page cannot {what}.\n\n{error}",
            icon=":material/cloud_off:",
        )
    elif isinstance(error, LoginRequiredError):
        st.warning(f"**Login needed** to {what}: {error.message}", icon=":material/lock:")
    elif isinstance(error, ApiResponseError):
        problems = "".join(
            f"\n- `{item.get('field')}`: {item.get('problem')}" for item in error.detail
        )
        st.error(
            f"**Could not {what}** (HTTP {error.status_code}): {error.message}{problems}",
            icon=":material/error:",
        )
    else:
        st.error(f"Could not {what}: {error}")


def fetch(what: str, call: Callable[[], T]) -> T:
    """``call()``'s answer; on an API error, the error is shown and the page ends there."""
    try:
        return call()
    except ApiError as error:
        show_error(error, what)
        st.stop()


@st.cache_data(ttl=EVALUATION_CACHE_SECONDS, show_spinner=False)
def evaluation(base_url: str, name: str, version: str) -> dict[str, Any]:
    """A model version's evaluation (``base_url`` keys the cache: one API, one entry)."""
    return client().evaluation(name, version)


@st.cache_data(ttl=MODEL_NAMES_CACHE_SECONDS, show_spinner=False)
def _model_names(base_url: str) -> list[str]:
    return [model["name"] for model in client().models()["models"]]


def painted(figure: go.Figure) -> go.Figure:
    """``figure`` with each model in its own colour, the same on every page."""
    try:
        names = _model_names(settings().base_url)
    except ApiError:
        names = []  # the page says the API is down; the chart keeps plotly's colours
    return paint(figure, model_colours(names))


def token() -> str | None:
    value = st.session_state.get(TOKEN_KEY)
    return value if isinstance(value, str) else None


def login_form(why: str) -> None:
    """Ask for a user's name and password; once logged in, the page runs again with its token.

    ``why`` says what the login is for. The token serves every page, and a reload too
    (``login_cookie``).
    """
    st.info(why, icon=":material/lock:")
    with st.form("login"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if not submitted:
        return
    try:
        token = client().login(username, password)
    except LoginRequiredError:
        st.error("Wrong username or password.")
        return
    except ApiError as error:
        show_error(error, "log in")
        return
    st.session_state[TOKEN_KEY], st.session_state[USERNAME_KEY] = token, username
    st.rerun()


def log_out() -> None:
    st.session_state.pop(TOKEN_KEY, None)
    st.session_state.pop(USERNAME_KEY, None)


def api_status_in_sidebar() -> None:
    """Where the API is and whether it answers, on every page."""
    api = client()
    try:
        api.health()
    except ApiError:
        st.sidebar.error(f"API unreachable at {api.base_url}", icon=":material/cloud_off:")
    else:
        st.sidebar.success(f"API up at {api.base_url}", icon=":material/cloud_done:")
    user = st.session_state.get(USERNAME_KEY)
    if user:
        st.sidebar.caption(f"Logged in as **{user}**")
