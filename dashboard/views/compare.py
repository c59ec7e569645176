"""Compare: models of one task on the same held-out data, to choose the default at a glance.

Each model is compared as it serves (its champion, else its latest version), other versions
on demand; an admin promotes the leader: the champion of its model, or the default model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, comparison, ui
from dashboard.api_client import ApiError, LoginRequiredError

logger = logging.getLogger(__name__)

BEST_STYLE = "background-color: rgba(46, 125, 50, 0.25); font-weight: bold"
PROMOTE_LOGIN = "Log in as an admin to promote the leader (make it a champion or the default)."


def choose_models(models: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (model, version) pairs to compare: each chosen model as it serves, then any other
    version asked for."""
    tasks = sorted({model["task"] for model in models})
    task = st.selectbox("Task", tasks, key="compare_task")
    of_task = [model for model in models if model["task"] == task]
    names = [model["name"] for model in of_task]
    chosen = st.multiselect("Models", names, default=names, key=f"compare_models:{task}")
    pairs = [(m["name"], m["serving_version"]) for m in of_task if m["name"] in chosen]
    others = [
        f"{model['name']}@{version['version']}"
        for model in of_task
        if model["name"] in chosen
        for version in model["versions"]
        if version["task"] is not None and version["version"] != model["serving_version"]
    ]
    if others:
        extra = st.multiselect("Other versions", others, key=f"compare_versions:{task}")
        pairs += [(label.split("@")[0], label.split("@")[1]) for label in extra]
    return pairs


def load_evaluations(pairs: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Each version's evaluation; one that cannot be evaluated is reported and left out."""
    base_url = ui.settings().base_url
    evaluations = {}
    for name, version in pairs:
        with st.spinner(f"Evaluating {name}@{version} on the held-out set…"):
            try:
                evaluation = ui.evaluation(base_url, name, version)
            except ApiError as error:
                ui.show_error(error, f"evaluate {name}@{version}")
                continue
        evaluations[comparison.model_label(evaluation)] = evaluation
    return evaluations


def warn_about_the_data(evaluations: dict[str, dict[str, Any]]) -> None:
    datasets = comparison.datasets(evaluations)
    if len(datasets) > 1:
        st.warning(
            f"These models were evaluated on different data ({', '.join(datasets)}): "
            "the comparison is not like for like."
        )
    first = next(iter(evaluations.values()))
    st.caption(
        f"Evaluated on `{first['dataset']}`: {first['samples']} samples. "
        f"{first['dataset_description']}"
    )
    mocked = [model for model, e in evaluations.items() if e["runtime"] == "mock"]
    if mocked:
        st.warning(
            f"{', '.join(mocked)} ran on mock runtimes (ENV=test): the numbers are "
            "placeholders, not the models' quality."
        )


def show_recommendation(
    advice: comparison.Recommendation,
    default_model: str | None,
    task_models: list[str],
    measured_on: str,
) -> None:
    """Who should be the default, said against the current default when it is of this task."""
    leads = f"ties with {', '.join(advice.tied_with)} on" if advice.tied_with else "leads on"
    text = (
        f"**{advice.model}** {leads} {advice.metric} ({advice.value:.3f} on {measured_on}) "
        f"and is best on {advice.wins} of {advice.compared_metrics} metrics."
    )
    name, default_name = advice.model.split("@")[0], (default_model or "").split("@")[0]
    if name == default_name:
        st.success(f"{text} It is the default model already.", icon=":material/verified:")
    elif default_name in task_models:
        st.info(
            f"{text} The default is `{default_model}`: consider making `{name}` the default.",
            icon=":material/lightbulb:",
        )
    else:
        st.info(
            f"{text} The default model serves another task: ask for this one as "
            f"`POST /predict/{name}`.",
            icon=":material/lightbulb:",
        )


def show_promotion(
    advice: comparison.Recommendation, models: list[dict[str, Any]], default_model: str | None
) -> None:
    """The admin's buttons: the leader becomes its model's champion, its model the default."""
    st.subheader("Promote")
    token = ui.token()
    if token is None:
        ui.login_form(PROMOTE_LOGIN)
        return
    name, version = advice.model.split("@")
    model = next(model for model in models if model["name"] == name)
    if model["aliases"].get("champion") == version:
        st.caption(f"`{advice.model}` is the champion of `{name}` already.")
    elif st.button(f"Make {advice.model} the champion of {name}", icon=":material/star:"):
        promote(
            f"make {advice.model} the champion",
            lambda: ui.client().set_alias(token, name, "champion", version),
            f"`{name}` serves version {version} on every worker within 2 s.",
        )
    if (default_model or "").split("@")[0] != name and st.button(
        f"Make {name} the default model", icon=":material/verified:"
    ):
        promote(
            f"make {name} the default model",
            lambda: ui.client().set_default_model(token, name),
            f"`POST /predict` serves `{name}` on every worker within 2 s.",
        )


def promote(what: str, call: Callable[[], object], done: str) -> None:
    try:
        call()
    except LoginRequiredError:
        ui.log_out()
        st.warning("Your session has expired: log in again.", icon=":material/lock_clock:")
    except ApiError as error:
        ui.show_error(error, what)
    else:
        st.success(done, icon=":material/check_circle:")


def show_metrics_table(table: pd.DataFrame, measured_on: str) -> None:
    models = [column for column in table.columns if column != comparison.BEST_COLUMN]

    def mark_best(row: pd.Series) -> list[str]:
        best = comparison.best_models(row[models], str(row.name))
        return [BEST_STYLE if column in best else "" for column in row.index]

    styled = table.style.apply(mark_best, axis=1).format(precision=3, subset=models)
    st.dataframe(styled)
    st.caption(
        f"Measured on {measured_on}. Highlighted: the best value of each metric (latency: lowest)."
    )


def show_roc_and_latency(evaluations: dict[str, dict[str, Any]]) -> None:
    latency = charts.latency_chart(comparison.latency_frame(evaluations))
    roc = comparison.roc_frame(evaluations)
    if roc.empty:  # more than two labels: no single ROC curve
        st.plotly_chart(latency)
        return
    left, right = st.columns(2)
    left.plotly_chart(ui.painted(charts.roc_chart(roc)))
    right.plotly_chart(latency)


def show_error_analysis(evaluations: dict[str, dict[str, Any]]) -> None:
    columns = st.columns(len(evaluations))
    for column, (model, evaluation) in zip(columns, evaluations.items(), strict=True):
        column.plotly_chart(
            charts.confusion_chart(
                evaluation["confusion_matrix"], evaluation["labels"], f"Confusion matrix: {model}"
            )
        )
    st.plotly_chart(ui.painted(charts.per_class_chart(comparison.per_class_frame(evaluations))))


def show_agreement(evaluations: dict[str, dict[str, Any]]) -> None:
    left, right = st.columns(2)
    left.plotly_chart(charts.agreement_chart(comparison.agreement_matrix(evaluations)))
    models = list(evaluations)
    pair = models[:2]
    if len(models) > 2:
        picked = right.multiselect(
            "Pair", models, default=pair, max_selections=2, key="compare_pair"
        )
        pair = (picked + [model for model in models if model not in picked])[:2]
    first, second = pair
    breakdown = comparison.correctness_breakdown(evaluations[first], evaluations[second])
    right.plotly_chart(charts.breakdown_chart(breakdown, f"{first} vs {second}: who is right"))


def main() -> None:
    st.title("Compare models")
    api = ui.client()
    listing = ui.fetch("list the models", api.models)
    chosen = choose_models(listing["models"])
    if len(chosen) < 2:
        st.info("Choose two or more models (or versions) of the task to compare them.")
        st.stop()
    evaluations = load_evaluations(chosen)
    if len(evaluations) < 2:
        st.warning("Fewer than two of these models could be evaluated: nothing to compare.")
        st.stop()
    warn_about_the_data(evaluations)
    measured_on = comparison.measured_on(evaluations)
    table = comparison.metrics_table(evaluations)
    advice = comparison.recommend(table, listing["default_model"])
    if advice is not None:
        show_recommendation(
            advice, listing["default_model"], [name for name, _ in chosen], measured_on
        )
    show_metrics_table(table, measured_on)
    quality = charts.quality_bars(table, comparison.QUALITY_METRICS, measured_on)
    st.plotly_chart(ui.painted(quality))
    show_roc_and_latency(evaluations)
    st.subheader("Errors")
    show_error_analysis(evaluations)
    st.subheader("Agreement on the same inputs")
    show_agreement(evaluations)
    if advice is not None:
        show_promotion(advice, listing["models"], listing["default_model"])


main()
