"""Models: the registry with status, versions, aliases, key metrics, manifest and history."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, ui
from dashboard.api_client import ApiError, LoginRequiredError

logger = logging.getLogger(__name__)

# The metrics worth a column, in this order, when a model's manifest has them.
KEY_METRICS = ["roc_auc", "accuracy", "f1", "macro_f1"]
HEADLINE_METRICS = {"roc_auc", "accuracy", "f1", "macro_f1", "precision", "recall"}
HISTORY_COLUMNS = ["changed_at", "actor", "action", "alias", "from_version", "to_version"]
HISTORY_LOGIN = "Who changed which alias, and when: log in with an API user to see it."


def registry_table(models: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for model in models:
        row = {
            "model": model["name"],
            "default": "★" if model["is_default"] else "",
            "task": model["task"],
            "input": model["input_kind"],
            "status": model["status"],
            "serving": model["serving_version"],
            "aliases": describe_aliases(model["aliases"]),
            "latest": model["latest_version"],
            "versions": len(model["versions"]),
        }
        row.update({metric: model["metrics"].get(metric) for metric in KEY_METRICS})
        row["measured on"] = measured_on(model)
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis="columns", how="all")


def measured_on(model: dict[str, Any]) -> str:
    """The data set of the model's headline metrics, with its size: a figure means nothing
    without it (one model scores 0.99 on unseen pitches and 0.80 on another soundfont)."""
    measured = model.get("metrics_measured_on")
    if not measured:
        return "data set not recorded"
    return f"{measured['dataset']} ({measured['samples']} samples)"


def describe_aliases(aliases: dict[str, str]) -> str:
    """``champion → 2, challenger → 3``: each alias and the version it names."""
    return ", ".join(f"{alias} → {version}" for alias, version in aliases.items())


def metrics_by_task(models: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Per task, the manifest metrics every one of its models records."""
    frames = {}
    for task in sorted({model["task"] for model in models}):
        of_task = [model for model in models if model["task"] == task]
        shared = set.intersection(*(set(model["metrics"]) for model in of_task))
        # Only the figures of the headline data set: prefixed ones (cv_, heldout_pitches_…)
        # were measured on other data.
        shown = [metric for metric in sorted(shared) if metric in HEADLINE_METRICS]
        frames[task] = pd.DataFrame(
            [
                {"model": model["name"], "metric": metric, "value": model["metrics"][metric]}
                for model in of_task
                for metric in shown
            ],
            columns=["model", "metric", "value"],
        )
    return frames


def show_versions(detail: dict[str, Any]) -> None:
    versions = pd.DataFrame(detail["versions"])
    versions["aliases"] = versions["aliases"].apply(", ".join)
    columns = [
        "version",
        "aliases",
        "status",
        "framework",
        "created_at",
        "loaded_at",
        "load_seconds",
        "error",
    ]
    st.dataframe(versions[[c for c in columns if c in versions]], hide_index=True)


def show_input_schema(manifest: dict[str, Any]) -> None:
    schema = manifest["input"]
    if schema["kind"] == "tabular":
        features = pd.DataFrame(schema["features"])
        if "categories" in features:
            features["categories"] = features["categories"].apply(
                lambda values: ", ".join(values) if isinstance(values, list) else ""
            )
        st.dataframe(features, hide_index=True)
    else:
        st.markdown(
            f"Audio: {', '.join(schema['formats'])}, resampled to "
            f"{schema['sample_rate']} Hz, {schema['clip_seconds']:g} s windows"
        )
        st.json(schema["features"], expanded=False)


def show_manifest(manifest: dict[str, Any]) -> None:
    output = manifest["output"]
    st.markdown(
        f"**Framework:** `{manifest['framework']}` · **artifact:** `{manifest['artifact']}` "
        f"(sha256 `{manifest['sha256'][:12]}…`) · **labels:** {', '.join(output['labels'])}"
        + (
            f" · **decision threshold:** {output['decision_threshold']:.3f} on "
            f"`{output['positive_label']}`"
            if output.get("decision_threshold") is not None
            else ""
        )
    )
    training = manifest["training"]
    st.markdown(
        f"**Trained on:** {training['data']['source']} "
        f"({training['data'].get('rows') or '?'} rows) by `{training['code']}`"
    )
    with st.expander("Input schema"):
        show_input_schema(manifest)
    with st.expander("Evaluations recorded at training"):
        for evaluation in manifest["evaluations"]:
            st.markdown(
                f"**{evaluation['dataset']}** ({evaluation['samples']} samples): "
                f"{evaluation['description']}"
            )
            st.dataframe(pd.DataFrame([evaluation["metrics"]]), hide_index=True)
    with st.expander("Training parameters"):
        st.json(training["parameters"], expanded=False)
    with st.expander("Full manifest"):
        st.json(manifest, expanded=False)


def show_history(name: str) -> None:
    """The model's changes, newest first, for a logged-in user."""
    token = ui.token()
    if token is None:
        ui.login_form(HISTORY_LOGIN)
        return
    try:
        page = ui.client().history(token, name)
    except LoginRequiredError:
        ui.log_out()
        ui.login_form(HISTORY_LOGIN)
        return
    except ApiError as error:
        ui.show_error(error, f"read the history of {name}")
        return
    if not page["items"]:
        st.caption("No change yet: no alias set, no default changed, nothing loaded by hand.")
        return
    st.dataframe(pd.DataFrame(page["items"])[HISTORY_COLUMNS], hide_index=True)


def main() -> None:
    st.title("Models")
    api = ui.client()
    listing = ui.fetch("list the models", api.models)
    models = listing["models"]
    if not models:
        st.warning("The model store holds no model: check MODELS_DIR.")
        st.stop()
    st.dataframe(registry_table(models), hide_index=True)
    for task, frame in metrics_by_task(models).items():
        if not frame.empty:
            sets = {measured_on(model) for model in models if model["task"] == task}
            where = sets.pop() if len(sets) == 1 else "different data sets (see the table)"
            st.plotly_chart(
                charts.headline_metrics_chart(frame).update_layout(
                    title=f"{task}: metrics on {where}"
                )
            )
    st.subheader("Details")
    names = [model["name"] for model in models]
    name = st.selectbox("Model", names, key="models_detail")
    detail = ui.fetch(f"read model {name}", lambda: api.model(name))
    st.markdown(detail["description"] or "_No description._")
    st.markdown(
        f"`{name}` serves version **{detail['serving_version']}**"
        + (" (its champion)" if "champion" in detail["aliases"] else " (its latest)")
    )
    show_versions(detail)
    show_manifest(detail["manifest"])
    st.subheader("History")
    show_history(name)


main()
