"""A fitted ``StandardScaler`` + ``LogisticRegression`` pipeline's arithmetic, in numpy, and its
exact JSON form: how instrument-mfcc is served without unpickling or scikit-learn.

scikit-learn's import alone costs a second and 120 MB, and a pickle runs whatever it names.
The compiled form holds the scaler's means and scales and the classifier's coefficients as
JSON numbers (Python writes each float64 with the shortest repr that reads back to the same
bits), each array read back in its own dtype; ``predict_proba`` then computes what the
pipeline computes, in the same dtypes: bit-equal for more than two classes, and within a few
units in the last place for two (scikit-learn's logistic is scipy's ``expit``).
Compiling a fitted pipeline into it is packaging's work (``ml.packaging.compile_softmax``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.compiled_form import (
    FORMAT_VERSION,
    CompiledFormError,
    json_float,
    json_list,
    json_object,
    json_str,
    read_header,
)

SOFTMAX_KIND = "linear-softmax"


@dataclass(frozen=True)
class LinearPipeline:
    """Standardise, then a linear score per class: logistic of the one score for two
    classes, softmax over the scores for more (scikit-learn's multinomial)."""

    mean: np.ndarray | None
    scale: np.ndarray | None
    coef: np.ndarray
    """One row per class, or one row for two classes."""
    intercept: np.ndarray
    classes_: np.ndarray

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``Pipeline.predict_proba``: scaled in place in the features' own float dtype, the
        scaler's arrays cast to it, as ``StandardScaler.transform`` does, then the logistic
        (two classes) or the softmax, in place as scikit-learn's softmax."""
        x = np.array(features, dtype=features.dtype if features.dtype.kind == "f" else float)
        if x.ndim != 2 or x.shape[1] != self.coef.shape[1]:
            raise ValueError(
                f"X has {x.shape[-1]} features, but the pipeline expects {self.coef.shape[1]}"
            )
        if self.mean is not None:
            x -= self.mean.astype(x.dtype, copy=False)
        if self.scale is not None:
            x /= self.scale.astype(x.dtype, copy=False)
        scores: np.ndarray = x @ self.coef.T + self.intercept
        if len(self.classes_) <= 2:
            positive = 1.0 / (1.0 + np.exp(-scores.ravel()))
            return np.stack([1.0 - positive, positive], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def to_dict(self) -> dict[str, Any]:
        arrays = {
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
        }
        return {
            "format": FORMAT_VERSION,
            "kind": SOFTMAX_KIND,
            "link": "softmax",
            "classes": [str(label) for label in self.classes_],
            **{name: None if a is None else a.tolist() for name, a in arrays.items()},
            # A classifier fitted on float32 keeps float32 weights, and computes in float32:
            # each array is read back in its own dtype, so the arithmetic is the same.
            "dtypes": {name: str(a.dtype) for name, a in arrays.items() if a is not None},
        }

    @classmethod
    def from_dict(cls, data: Any) -> LinearPipeline:
        """The pipeline of its JSON form; ``CompiledFormError`` for anything else."""
        read_header(data, SOFTMAX_KIND, "softmax")
        dtypes = json_object(data.get("dtypes"))
        classes = [json_str(label) for label in json_list(data.get("classes"))]
        coef = [_floats(row) for row in json_list(data.get("coef"))]
        intercept = _floats(data.get("intercept"))
        rows = 1 if len(classes) == 2 else len(classes)
        width = len(coef[0]) if coef else 0
        if len(classes) < 2 or len(coef) != rows or len(intercept) != rows or not width:
            raise CompiledFormError(
                f"{len(classes)} classes need {rows} rows of coefficients and intercepts, "
                f"got {len(coef)} and {len(intercept)}"
            )
        if any(len(row) != width for row in coef):
            raise CompiledFormError("the rows of coefficients differ in length")
        scaler = {name: data.get(name) for name in ("mean", "scale")}
        arrays = {name: None if v is None else _floats(v) for name, v in scaler.items()}
        if any(v is not None and len(v) != width for v in arrays.values()):
            raise CompiledFormError(f"the scaler's mean and scale need {width} numbers each")

        def array(name: str, values: list[Any] | None) -> np.ndarray | None:
            if values is None:
                return None
            dtype = dtypes.get(name)
            if dtype not in _DTYPES:
                raise CompiledFormError(f"the dtype of {name} is {dtype!r}, not one of {_DTYPES}")
            with np.errstate(over="ignore"):
                cast = np.array(values, dtype=dtype)
            # A number finite in JSON may not be in float32; a scale of 0 divides by it
            # (scikit-learn's scaler never has one: it makes a constant feature's scale 1).
            if not np.isfinite(cast).all() or (name == "scale" and not (cast > 0).all()):
                raise CompiledFormError(f"{name} holds a value it cannot have in {dtype}")
            return cast

        return cls(
            mean=array("mean", arrays["mean"]),
            scale=array("scale", arrays["scale"]),
            coef=np.asarray(array("coef", coef)),
            intercept=np.asarray(array("intercept", intercept)),
            classes_=np.array(classes),
        )


_DTYPES = ("float32", "float64")


def _floats(value: Any) -> list[float]:
    return [json_float(item) for item in json_list(value)]
