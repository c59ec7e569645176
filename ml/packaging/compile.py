"""What the compilers share: the refusal of a pipeline that a compiled form cannot reproduce
exactly, the tolerance of the proof that it does, and the file a compiled form is stored in.

The JSON readers are serving's (``ml.compiled_form``); everything here runs at packaging only.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ml.manifest import TabularInput

logger = logging.getLogger(__name__)

# A compiled form must reproduce predict_proba to rounding error, not approximately:
# packaging proves it on every held-out row with these tolerances before writing the form.
FASTPATH_RTOL = 1e-9
FASTPATH_ATOL = 1e-12

Scorer = TypeVar("Scorer")


class CompiledScorer(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def compiled_text(scorer: CompiledScorer) -> str:
    """The file a compiled form is stored in: sorted keys, no spaces, so it is reproducible."""
    return json.dumps(scorer.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"


class UnsupportedPipeline(Exception):
    """The pipeline is not exactly the shape a compiled form can reproduce."""


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


def is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
