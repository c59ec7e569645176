"""What the compiled (pickle-free) forms of fitted models share: their JSON format, strict
readers for it, and the rules for refusing a pipeline that a form cannot reproduce exactly.

Nothing here imports numpy, scikit-learn or pandas: serving a compiled model does not either.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ml.manifest import TabularInput

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
Scorer = TypeVar("Scorer")


class CompiledScorer(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def compiled_text(scorer: CompiledScorer) -> str:
    """The file a compiled form is stored in: sorted keys, no spaces, so it is reproducible."""
    return json.dumps(scorer.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"


class CompiledFormError(ValueError):
    """A compiled model's JSON is not the form this code reads."""


class UnsupportedPipeline(Exception):
    """The pipeline is not exactly the shape a compiled form can reproduce."""


def logistic(z: float) -> float:
    """1 / (1 + e^-z) without overflow: ``exp`` only ever sees a non-positive argument."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    exp_z = math.exp(z)
    return exp_z / (1.0 + exp_z)


def read_header(data: Any, kind: str) -> None:
    """Check that ``data`` is an object of this format, kind and link."""
    if not isinstance(data, dict):
        raise CompiledFormError("the compiled model is not a JSON object")
    header = (data.get("format"), data.get("kind"), data.get("link"))
    if header != (FORMAT_VERSION, kind, "logistic"):
        raise CompiledFormError(
            f"format, kind and link are {header}, expected {(FORMAT_VERSION, kind, 'logistic')}"
        )


def json_float(value: Any) -> float:
    """A finite JSON number as a float (``json`` reads ``1.0`` as float and ``1`` as int)."""
    if type(value) not in (int, float) or not math.isfinite(value):
        raise CompiledFormError(f"expected a finite number, got {value!r}")
    return float(value)


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


def require_features(columns: list[str], features: Mapping[str, object], kind: type) -> None:
    """Every column must be a feature of ``kind`` in the model's input schema."""
    for column in columns:
        if not isinstance(features.get(column), kind):
            raise UnsupportedPipeline(f"column {column!r} is not a {kind.__name__} of the schema")


def compile_or_none(
    compile_pipeline: Callable[[object, TabularInput], Scorer],
    pipeline: object,
    schema: TabularInput,
    form: str,
) -> Scorer | None:
    """``compile_pipeline``'s scorer, or ``None`` (logged) when the pipeline's shape differs."""
    try:
        return compile_pipeline(pipeline, schema)
    except UnsupportedPipeline as unsupported:
        logger.info("No %s fast path: %s", form, unsupported)
        return None
