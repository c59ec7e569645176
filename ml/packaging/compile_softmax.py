"""Compile a fitted ``StandardScaler`` + ``LogisticRegression`` pipeline (instrument-mfcc's)
into its exact JSON form (``ml.linear_softmax``), proven equal to ``predict_proba``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml.linear_softmax import SOFTMAX_KIND, LinearPipeline
from ml.manifest import CompiledModel, sha256_file
from ml.packaging.compile import (
    FASTPATH_ATOL,
    FASTPATH_RTOL,
    UnsupportedPipeline,
    compiled_text,
    two_steps,
)

logger = logging.getLogger(__name__)


def compile_scaler_logistic(pipeline: object) -> LinearPipeline:
    """The arithmetic of exactly a fitted two-step ``StandardScaler``, multinomial (or
    binary) ``LogisticRegression`` pipeline; ``UnsupportedPipeline`` for anything else."""
    scaler, logistic = two_steps(pipeline, StandardScaler, LogisticRegression)
    if not hasattr(logistic, "coef_") or not hasattr(scaler, "n_features_in_"):
        raise UnsupportedPipeline("the pipeline is not fitted")
    # A classifier whose probabilities are no softmax of these scores (one-vs-rest, in older
    # scikit-learn) compiles, and fails the proof of ``write_proven_form``.
    return LinearPipeline(
        mean=scaler.mean_ if scaler.with_mean else None,
        scale=scaler.scale_ if scaler.with_std else None,
        coef=np.asarray(logistic.coef_),
        intercept=np.asarray(logistic.intercept_),
        classes_=np.asarray([str(label) for label in logistic.classes_]),
    )


def write_proven_form(
    pipeline: object, features: np.ndarray, model_dir: Path, artifact: str
) -> CompiledModel | None:
    """Write the compiled form of ``pipeline`` as ``artifact`` once it predicts ``features``
    as the pipeline does; ``None`` (logged) for a pipeline of another shape, and a
    ``RuntimeError`` when one of this shape predicts otherwise: shipping it served by
    scikit-learn instead would hide that."""
    try:
        scorer = compile_scaler_logistic(pipeline)
    except UnsupportedPipeline as unsupported:
        logger.info("No compiled form: %s", unsupported)
        return None
    # Read back from its text, as serving will: the proof is of the file, not of the object.
    text = compiled_text(scorer)
    served = LinearPipeline.from_dict(json.loads(text))
    expected = pipeline.predict_proba(features)  # type: ignore[attr-defined]
    actual = served.predict_proba(features)
    if not np.allclose(actual, expected, rtol=FASTPATH_RTOL, atol=FASTPATH_ATOL):
        difference = float(np.max(np.abs(actual - expected)))
        raise RuntimeError(
            f"the compiled form differs from predict_proba on {len(features)} rows "
            f"(max abs difference {difference:.3g})"
        )
    path = model_dir / artifact
    path.write_text(text, encoding="utf-8")
    return CompiledModel(kind=SOFTMAX_KIND, artifact=artifact, sha256=sha256_file(path))
