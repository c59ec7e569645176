"""Converting a fitted scikit-learn classifier or pipeline to ONNX with skl2onnx.

One input per feature, named as the feature (``[N, 1]``: strings for categories, numbers
otherwise), and the probabilities as one tensor (no ZipMap), as ``ml.onnx_runtime`` feeds
and reads them. Every skl2onnx detail is here.

Double precision first, with two corrections of what skl2onnx 1.20 writes, so that the graph
computes what scikit-learn computes rather than an approximation of it:

- ``SimpleImputer``: skl2onnx writes ONNX-ML's ``Imputer``, whose fill values are float32 and
  which ONNX Runtime has no double kernel for; here ``IsNaN`` and ``Where`` with the float64
  statistics.
- ``RandomForestClassifier``, ``ExtraTreesClassifier``: scikit-learn rounds the trees' input
  to float32 before it compares it with their thresholds (most of which are float32 values);
  skl2onnx compares the unrounded double, which sends a row whose value rounds to a threshold
  down the other branch (1/60 of a probability, one tree of 60). Here the trees' input is
  rounded to float32 first, as scikit-learn does. Their probabilities remain float32 sums
  (ONNX-ML's tree ensembles answer float), within about 1e-7 of scikit-learn's.

Where the double conversion fails, the float one with skl2onnx's own converters. Neither is
trusted: ``python -m registry add`` proves the result on the sample before it keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import skl2onnx
from onnx import TensorProto
from skl2onnx.common._apply_operation import apply_cast
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
from skl2onnx.operator_converters.common import concatenate_variables
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from ml.manifest import CategoricalFeature, TabularInput

Precision = Literal["double", "float"]
PRECISIONS: tuple[Precision, ...] = ("double", "float")
CONVERTER = f"skl2onnx {skl2onnx.__version__}"
# Opsets that the pinned onnxruntime runs.
TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}


class ConversionError(Exception):
    """skl2onnx cannot convert the estimator at this precision; the message says why."""


def convert_to_onnx(estimator: Any, schema: TabularInput, precision: Precision) -> bytes:
    """The serialised ONNX model of ``estimator``; ``ConversionError`` when it does not convert."""
    number_type = DoubleTensorType if precision == "double" else FloatTensorType
    initial_types = [
        (
            feature.name,
            StringTensorType([None, 1])
            if isinstance(feature, CategoricalFeature)
            else number_type([None, 1]),
        )
        for feature in schema.features
    ]
    custom: dict[type, Callable[..., None]] = (
        {
            SimpleImputer: _double_imputer,
            RandomForestClassifier: _float32_forest,
            ExtraTreesClassifier: _float32_forest,
        }
        if precision == "double"
        else {}
    )
    try:
        model = skl2onnx.convert_sklearn(
            estimator,
            initial_types=initial_types,
            target_opset=TARGET_OPSET,
            options={id(_final_estimator(estimator)): {"zipmap": False}},
            custom_conversion_functions=custom,
        )
    except Exception as error:  # skl2onnx raises anything for what it cannot convert
        raise ConversionError(f"{type(error).__name__}: {error}") from error
    serialised: bytes = model.SerializeToString()
    return serialised


def _final_estimator(estimator: Any) -> Any:
    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def _double_imputer(scope: Any, operator: Any, container: Any) -> None:
    """Missing numbers (NaN) replaced by the float64 statistics; anything else as skl2onnx."""
    imputer = operator.raw_operator
    missing = imputer.missing_values
    if not isinstance(operator.inputs[0].type, DoubleTensorType) or not (
        isinstance(missing, float) and np.isnan(missing)
    ):
        convert_sklearn_imputer(scope, operator, container)
        return
    values = concatenate_variables(scope, operator.inputs, container)
    fill = scope.get_unique_variable_name("fill_values")
    statistics = imputer.statistics_.astype(np.float64)
    container.add_initializer(fill, TensorProto.DOUBLE, [statistics.size], statistics.tolist())
    is_missing = scope.get_unique_variable_name("is_missing")
    container.add_node(
        "IsNaN", [values], [is_missing], name=scope.get_unique_operator_name("IsNaN")
    )
    container.add_node(
        "Where",
        [is_missing, fill, values],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )


def _float32_forest(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx's forest converter, fed the input rounded to float32 as scikit-learn feeds it."""
    source = operator.inputs[0]
    rounded = scope.declare_local_variable("float32_input", FloatTensorType(source.type.shape))
    apply_cast(scope, source.full_name, rounded.full_name, container, to=TensorProto.FLOAT)
    operator.inputs.set_element(0, rounded)
    convert_sklearn_random_forest_classifier(scope, operator, container)
