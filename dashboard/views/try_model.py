"""Try a model: a form built from its input schema (tabular) or an upload (audio)."""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import streamlit as st

from dashboard import charts, ui
from dashboard.api_client import ApiError

logger = logging.getLogger(__name__)

FORM_COLUMNS = 3


def choose_model(listing: dict[str, Any]) -> str:
    models = listing["models"]
    names = [model["name"] for model in models]
    default = (listing["default_model"] or "").split("@")[0]
    tasks = {model["name"]: model["task"] for model in models}
    return str(
        st.selectbox(
            "Model",
            names,
            index=names.index(default) if default in names else 0,
            format_func=lambda name: f"{name} ({tasks[name]})",
            key="try_model",
        )
    )


def feature_input(feature: dict[str, Any], example: Any, key: str) -> Any:
    """One widget for one feature, starting from the manifest's example row."""
    label, help_text = feature["name"], feature.get("description") or None
    if feature["type"] == "category":
        options = feature["categories"]
        index = options.index(example) if example in options else 0
        return st.selectbox(label, options, index=index, key=key, help=help_text)
    integer = feature["type"] == "integer"
    cast = int if integer else float
    bounds = {
        name: cast(feature[name])
        for name in ("minimum", "maximum")
        if feature.get(name) is not None
    }
    value = cast(example) if example is not None else bounds.get("minimum", cast(0))
    # The range is said, not enforced: the browser silently refused an out-of-range value and
    # Predict did nothing; sent as typed, the API's answer names the field and its range.
    if bounds:
        allowed = f"from {bounds.get('minimum', '−∞')} to {bounds.get('maximum', '∞')}"
        help_text = f"{help_text}. {allowed}" if help_text else allowed.capitalize()
    return st.number_input(
        label, value=value, step=cast(1) if integer else None, key=key, help=help_text
    )


def tabular_form(name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The features entered, once the form is submitted."""
    example = schema.get("example", {})
    with st.form(f"features:{name}"):
        columns = st.columns(FORM_COLUMNS)
        features = {}
        for i, feature in enumerate(schema["features"]):
            with columns[i % FORM_COLUMNS]:
                features[feature["name"]] = feature_input(
                    feature, example.get(feature["name"]), f"{name}:{feature['name']}"
                )
        submitted = st.form_submit_button("Predict", type="primary")
    return features if submitted else None


def audio_upload(name: str, schema: dict[str, Any]) -> tuple[str, bytes] | None:
    """The uploaded file, played back and drawn, once the user asks for a prediction."""
    upload = st.file_uploader(
        f"An audio file ({', '.join(schema['formats'])})",
        type=schema["formats"],
        key=f"upload:{name}",
    )
    if upload is None:
        return None
    data = upload.getvalue()
    st.audio(data)
    waveform = decode_for_display(data)
    if waveform is None:
        st.caption("This file cannot be drawn here; the API judges whether it can be predicted.")
    else:
        st.plotly_chart(charts.waveform_chart(*waveform))
    if not st.button("Predict", type="primary", key=f"predict:{name}"):
        return None
    return upload.name, data


def decode_for_display(data: bytes) -> tuple[np.ndarray, int] | None:
    """Mono samples for the waveform; None when the file is not audio soundfile reads."""
    import soundfile  # the audio stack, only when someone uploads audio

    try:
        samples, rate = soundfile.read(io.BytesIO(data), always_2d=True, dtype="float32")
    except (RuntimeError, TypeError, ValueError):  # libsndfile's errors are RuntimeErrors
        return None
    return samples.mean(axis=1), int(rate)


def show_answer(answer: dict[str, Any]) -> None:
    served = f"{answer['model']}@{answer['version']}"
    st.success(
        f"**{answer['label']}** from `{served}` in {answer['latency_ms']:.3g} ms "
        f"(request `{answer['request_id']}`)",
        icon=":material/check_circle:",
    )
    if answer["fallback"]:
        st.warning(
            f"Served by the fallback `{served}`: {answer['fallback_reason']}",
            icon=":material/swap_horiz:",
        )
    st.plotly_chart(charts.probability_chart(answer["probabilities"], answer["label"]))


def main() -> None:
    st.title("Try a model")
    api = ui.client()
    listing = ui.fetch("list the models", api.models)
    if not listing["models"]:
        st.warning("The model store holds no model: check MODELS_DIR.")
        st.stop()
    name = choose_model(listing)
    detail = ui.fetch(f"read model {name}", lambda: api.model(name))
    schema = detail["manifest"]["input"]
    st.caption(detail["description"])
    try:
        if schema["kind"] == "tabular":
            features = tabular_form(name, schema)
            answer = api.predict_features(name, features) if features is not None else None
        else:
            upload = audio_upload(name, schema)
            answer = api.predict_file(name, *upload) if upload is not None else None
    except ApiError as error:
        ui.show_error(error, f"predict with {name}")
        return
    if answer is not None:
        show_answer(answer)


main()
