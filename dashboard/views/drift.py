"""Drift: how far each model version's recent inputs and answers moved from its reference."""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.api_client import ApiError, ApiResponseError, LoginRequiredError
from dashboard.drift_chart import psi_bars

DRIFT_LOGIN = (
    "Drift is measured on the traced inputs, which hold personal data: log in with an API "
    "user (the admin of ADMIN_USERNAME, or a viewer)."
)


def main() -> None:
    st.title("Drift")
    st.caption(
        "PSI (population stability index) of the recent answered requests of a model version "
        "against the profile it was packaged with: under 0.1 stable, 0.1 to 0.25 worth a look, "
        "above 0.25 drifted. The server measures it every DRIFT_INTERVAL_SECONDS, off the "
        "request path, on the last DRIFT_WINDOW rows answered."
    )
    token = ui.token()
    if token is None:
        ui.login_form(DRIFT_LOGIN)
        st.stop()
    models = ui.fetch("list the models", ui.client().models)["models"]
    tabular = [model for model in models if model["input_kind"] == "tabular"]
    if not tabular:
        st.info("No tabular model is registered: drift is measured on tabular inputs.")
        st.stop()
    names = [model["name"] for model in tabular]
    name = st.sidebar.selectbox("Model", names, key="drift_model")
    chosen = tabular[names.index(name)]
    versions = [version["version"] for version in chosen["versions"]]
    version = st.sidebar.selectbox(
        "Version", versions, index=versions.index(chosen["serving_version"]), key="drift_version"
    )
    try:
        drift = ui.client().drift(token, name, version)
    except LoginRequiredError:
        ui.log_out()
        ui.login_form("Your session has expired: log in again.")
        st.stop()
    except ApiError as error:
        if isinstance(error, ApiResponseError) and error.status_code == 409:
            st.info(error.message, icon=":material/info:")  # packaged before drift existed
        else:
            ui.show_error(error, "measure drift")
        st.stop()
    show(drift)


def show(drift: dict[str, object]) -> None:
    window = drift["window"]
    assert isinstance(window, dict)
    first, second, third = st.columns(3)
    first.metric("Rows in the window", f"{window['rows']:,} of {window['limit']:,}")
    second.metric("Requests", f"{window['requests']:,}")
    psi = drift["prediction_psi"]
    third.metric("Prediction PSI", "—" if psi is None else f"{psi:.3f}", drift["prediction_level"])
    if window["since"]:
        st.caption(f"Requests received from {window['since']} to {window['until']} (UTC).")
    if drift["problem"]:
        st.info(f"No drift figures: {drift['problem']}.", icon=":material/hourglass_empty:")
        return
    features = drift["features"]
    assert isinstance(features, list)
    drifted = [feature["feature"] for feature in features if feature["level"] == "alert"]
    if drifted:
        st.error(f"Drifted (PSI above 0.25): {', '.join(drifted)}", icon=":material/warning:")
    else:
        st.success("No feature drifted beyond 0.25.", icon=":material/check_circle:")
    thresholds = drift["thresholds"]
    assert isinstance(thresholds, dict)
    st.plotly_chart(psi_bars(features, thresholds))


main()
