"""An exact, pure-Python fast path for one scikit-learn pipeline shape.

``StandardScaler`` + ``OneHotEncoder`` in a ``ColumnTransformer``, then a binary
``LogisticRegression``, is a linear function of the raw features followed by a logistic:

    p(positive) = logistic(intercept + sum_j coef_j * (x_j - mean_j) / scale_j
                           + sum_k coef[k, category_k])

Folding the scaler into the coefficients leaves, per row, one multiply-add per numeric
feature and one dict look-up per categorical feature: a few microseconds of plain Python,
against about a millisecond for ``predict_proba`` on a one-row DataFrame. A pipeline that
deviates from this shape gets no compiled form, and is served by the pipeline itself.

The scorer has an exact JSON form (``to_dict`` / ``from_dict``: Python writes every float
with the shortest repr that reads back to the same bits). Reading it needs no numpy,
scikit-learn or pandas. Compiling a fitted pipeline into it is packaging's work
(``ml.packaging.compile_linear``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml.compiled_form import (
    FORMAT_VERSION,
    json_float,
    json_object,
    json_objects,
    json_str,
    logistic,
    read_header,
)

LINEAR_KIND = "linear-logistic"


@dataclass(frozen=True, slots=True)
class LinearScorer:
    """The compiled pipeline: an intercept, numeric terms and per-category weights."""

    negative_class: str
    positive_class: str
    intercept: float
    """The classifier's intercept."""
    numeric_weights: tuple[tuple[str, float, float], ...]
    """``(feature, weight, offset)``: ``coef_j / scale_j`` and ``-weight * mean_j``."""
    category_weights: tuple[tuple[str, Mapping[str, float]], ...]
    """``(feature, {category: coef})``; an unseen category weighs 0, as one-hot ignores it."""
    offset: float = field(init=False, repr=False, compare=False)
    """``intercept + sum(offsets)``, folded once so that a row costs one pass."""

    def __post_init__(self) -> None:
        offsets = sum(offset for _, _, offset in self.numeric_weights)
        object.__setattr__(self, "offset", self.intercept + offsets)

    def decision_function(self, row: Mapping[str, Any]) -> float:
        total = self.offset
        for name, weight, _ in self.numeric_weights:
            total += weight * row[name]
        for name, weights in self.category_weights:
            total += weights.get(row[name], 0.0)
        return total

    def positive_probability(self, row: Mapping[str, Any]) -> float:
        """P(``positive_class``) of one validated row, as ``predict_proba`` computes it."""
        return logistic(self.decision_function(row))

    @property
    def features(self) -> dict[str, str]:
        """Every input the scorer reads: ``{name: "number" | "category"}``."""
        return {
            **{name: "number" for name, _, _ in self.numeric_weights},
            **{name: "category" for name, _ in self.category_weights},
        }

    def to_dict(self) -> dict[str, Any]:
        """The exact JSON form; lists keep the order in which the terms are summed."""
        return {
            "format": FORMAT_VERSION,
            "kind": LINEAR_KIND,
            "link": "logistic",
            "negative_class": self.negative_class,
            "positive_class": self.positive_class,
            "intercept": self.intercept,
            "numeric": [
                {"feature": name, "weight": weight, "offset": offset}
                for name, weight, offset in self.numeric_weights
            ],
            "categorical": [
                {"feature": name, "contributions": dict(weights)}
                for name, weights in self.category_weights
            ],
        }

    @classmethod
    def from_dict(cls, data: Any) -> LinearScorer:
        """Rebuild the scorer from ``to_dict``'s output; ``CompiledFormError`` if malformed."""
        read_header(data, LINEAR_KIND)
        numeric = [
            (
                json_str(term.get("feature")),
                json_float(term.get("weight")),
                json_float(term.get("offset")),
            )
            for term in json_objects(data.get("numeric"))
        ]
        categorical = [
            (
                json_str(term.get("feature")),
                {
                    json_str(category): json_float(weight)
                    for category, weight in json_object(term.get("contributions")).items()
                },
            )
            for term in json_objects(data.get("categorical"))
        ]
        return cls(
            negative_class=json_str(data.get("negative_class")),
            positive_class=json_str(data.get("positive_class")),
            intercept=json_float(data.get("intercept")),
            numeric_weights=tuple(numeric),
            category_weights=tuple(categorical),
        )
