"""What the compiled (pickle-free) forms of fitted models share: their JSON format and
strict readers for it. Serving reads compiled forms; making them is ``ml.packaging``'s work.

Nothing here imports numpy, scikit-learn or pandas: serving a tabular compiled model does not
either (instrument-mfcc's, ``ml.linear_softmax``, is scored with numpy, as its features are).
"""

from __future__ import annotations

import math
from typing import Any

FORMAT_VERSION = 1


class CompiledFormError(ValueError):
    """A compiled model's JSON is not the form this code reads."""


def logistic(z: float) -> float:
    """1 / (1 + e^-z) without overflow: ``exp`` only ever sees a non-positive argument."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    exp_z = math.exp(z)
    return exp_z / (1.0 + exp_z)


def read_header(data: Any, kind: str, link: str = "logistic") -> None:
    """Check that ``data`` is an object of this format, kind and link."""
    if not isinstance(data, dict):
        raise CompiledFormError("the compiled model is not a JSON object")
    header = (data.get("format"), data.get("kind"), data.get("link"))
    if header != (FORMAT_VERSION, kind, link):
        raise CompiledFormError(
            f"format, kind and link are {header}, expected {(FORMAT_VERSION, kind, link)}"
        )


def json_float(value: Any) -> float:
    """A finite JSON number as a float (``json`` reads ``1.0`` as float and ``1`` as int)."""
    try:
        number = float(value) if type(value) in (int, float) else math.nan
    except OverflowError:  # an integer past float's range
        number = math.inf
    if not math.isfinite(number):
        raise CompiledFormError(f"expected a finite number, got {str(value)[:40]}")
    return number


def json_int(value: Any) -> int:
    if type(value) is not int:
        raise CompiledFormError(f"expected an integer, got {value!r}")
    return value


def json_str(value: Any) -> str:
    if type(value) is not str:
        raise CompiledFormError(f"expected a string, got {value!r}")
    return value


def json_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise CompiledFormError(f"expected true or false, got {value!r}")
    return value


def json_list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise CompiledFormError(f"expected an array, got {type(value).__name__}")
    return value


def json_object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise CompiledFormError(f"expected an object, got {type(value).__name__}")
    return value


def json_objects(value: Any) -> list[dict[str, Any]]:
    return [json_object(item) for item in json_list(value)]
