"""Side-by-side comparison of models evaluated on the same held-out data (pure pandas).

Each evaluation is the JSON of ``GET /models/{name}/evaluation``; models are labelled
``name@version``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

Evaluations = Mapping[str, Mapping[str, Any]]
"""Model label -> its evaluation."""

# Shown in this order, each with its direction; metrics a task lacks are left out.
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "macro_f1": True,
    "macro_precision": True,
    "macro_recall": True,
    "latency_p50_ms": False,
    "latency_p95_ms": False,
}
QUALITY_METRICS = [name for name, higher in HIGHER_IS_BETTER.items() if higher]
BEST_COLUMN = "best"


@dataclass(frozen=True)
class Recommendation:
    """The model that leads on the task's headline metric, and how often it leads."""

    model: str
    tied_with: list[str]
    """Other models with the same headline value (mock runtimes tie everywhere)."""
    metric: str
    value: float
    wins: int
    compared_metrics: int


def model_label(evaluation: Mapping[str, Any]) -> str:
    return f"{evaluation['model']}@{evaluation['version']}"


def metrics_table(evaluations: Evaluations) -> pd.DataFrame:
    """Metrics as rows, models as columns, and the column ``best`` naming the leader(s)."""
    values = {
        label: {
            **evaluation["metrics"],
            "latency_p50_ms": evaluation["latency"]["p50_ms"],
            "latency_p95_ms": evaluation["latency"]["p95_ms"],
        }
        for label, evaluation in evaluations.items()
    }
    table = pd.DataFrame(values)
    table = table.loc[[name for name in HIGHER_IS_BETTER if name in table.index]]
    table[BEST_COLUMN] = [
        ", ".join(best_models(table.loc[metric, list(values)], metric)) for metric in table.index
    ]
    return table


def best_models(row: pd.Series, metric: str) -> list[str]:
    """The models with the best value of ``metric`` (several when tied)."""
    numbers = pd.to_numeric(row, errors="coerce").dropna()
    if numbers.empty:
        return []
    best = numbers.max() if HIGHER_IS_BETTER.get(metric, True) else numbers.min()
    return [str(model) for model, value in numbers.items() if value == best]


def recommend(table: pd.DataFrame, default_model: str | None = None) -> Recommendation | None:
    """The leader on ROC AUC (binary), else macro F1, else accuracy; the default wins ties."""
    headline = next((m for m in ("roc_auc", "macro_f1", "accuracy") if m in table.index), None)
    if headline is None:
        return None
    models = [column for column in table.columns if column != BEST_COLUMN]
    leaders = best_models(table.loc[headline, models], headline)
    default_name = (default_model or "").split("@")[0]
    leader = next((m for m in leaders if m.split("@")[0] == default_name), leaders[0])
    wins = sum(leader in best_models(table.loc[metric, models], metric) for metric in table.index)
    return Recommendation(
        leader,
        [m for m in leaders if m != leader],
        headline,
        float(table.loc[headline, leader]),
        wins,
        len(table.index),
    )


def agreement_matrix(evaluations: Evaluations) -> pd.DataFrame:
    """The share of common samples on which each pair of models predicts the same label."""
    labels = {model: _predicted(evaluation) for model, evaluation in evaluations.items()}
    models = list(labels)
    matrix = pd.DataFrame(1.0, index=models, columns=models)
    for first, second in combinations(models, 2):
        common = labels[first].index.intersection(labels[second].index)
        same = labels[first][common] == labels[second][common]
        share = float(same.mean()) if len(common) else float("nan")
        matrix.loc[first, second] = matrix.loc[second, first] = share
    return matrix


def correctness_breakdown(first: Mapping[str, Any], second: Mapping[str, Any]) -> pd.DataFrame:
    """On the samples both models saw: both right, only one right, both wrong."""
    right_first, right_second = _is_right(first), _is_right(second)
    common = right_first.index.intersection(right_second.index)
    right_first, right_second = right_first[common], right_second[common]
    a, b = model_label(first), model_label(second)
    counts = {
        "both right": int((right_first & right_second).sum()),
        f"only {a} right": int((right_first & ~right_second).sum()),
        f"only {b} right": int((~right_first & right_second).sum()),
        "both wrong": int((~right_first & ~right_second).sum()),
    }
    return pd.DataFrame({"case": list(counts), "samples": list(counts.values())})


def roc_frame(evaluations: Evaluations) -> pd.DataFrame:
    """ROC points of the binary evaluations, with each model's AUC in its label."""
    frames = []
    for model, evaluation in evaluations.items():
        roc = evaluation.get("roc")
        if not roc:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "model": f"{model} (AUC {roc['auc']:.3f})" if roc["auc"] is not None else model,
                    "false positive rate": roc["false_positive_rate"],
                    "true positive rate": roc["true_positive_rate"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def per_class_frame(evaluations: Evaluations) -> pd.DataFrame:
    rows = [
        {"model": model, "label": label, "metric": metric, "value": scores[metric]}
        for model, evaluation in evaluations.items()
        for label, scores in evaluation["per_class"].items()
        for metric in ("precision", "recall")
    ]
    return pd.DataFrame(rows, columns=["model", "label", "metric", "value"])


def latency_frame(evaluations: Evaluations) -> pd.DataFrame:
    rows = [
        {"model": model, "statistic": statistic, "ms": evaluation["latency"][f"{statistic}_ms"]}
        for model, evaluation in evaluations.items()
        for statistic in ("p50", "p95")
    ]
    return pd.DataFrame(rows, columns=["model", "statistic", "ms"])


def datasets(evaluations: Evaluations) -> set[str]:
    return {str(evaluation["dataset"]) for evaluation in evaluations.values()}


def measured_on(evaluations: Evaluations) -> str:
    """The data set every figure of the comparison was measured on, with its size."""
    if len(datasets(evaluations)) > 1:
        return "different data sets"
    first = next(iter(evaluations.values()))
    return f"{first['dataset']} ({first['samples']} samples)"


def _predicted(evaluation: Mapping[str, Any]) -> pd.Series:
    return pd.Series({p["id"]: p["predicted_label"] for p in evaluation["predictions"]})


def _is_right(evaluation: Mapping[str, Any]) -> pd.Series:
    return pd.Series(
        {p["id"]: p["predicted_label"] == p["true_label"] for p in evaluation["predictions"]},
        dtype=bool,
    )
