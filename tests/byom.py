"""A user's own model, as the tests and the bench of ``python -m registry add`` bring it.

A 60-tree random forest behind a ``SimpleImputer``, a ``StandardScaler`` and a
``OneHotEncoder`` in a ``ColumnTransformer``, fitted on attrition rows; numbers may be missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.helpers import HELDOUT_CSV

TARGET = "Attrition"
TREES = 60


def random_forest_pipeline(features: pd.DataFrame, labels: pd.Series, seed: int = 0) -> Pipeline:
    """The user's pipeline, fitted: imputed and scaled numbers, one-hot categories, a forest."""
    numeric = features.select_dtypes("number").columns.tolist()
    categorical = [column for column in features.columns if column not in numeric]
    preprocess = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    forest = RandomForestClassifier(n_estimators=TREES, random_state=seed, n_jobs=1)
    return Pipeline([("preprocess", preprocess), ("classifier", forest)]).fit(features, labels)


def attrition_sample(missing_every: int = 7) -> pd.DataFrame:
    """The committed held-out attrition rows (target included), ``Age`` missing now and then."""
    frame = pd.read_csv(HELDOUT_CSV)
    frame["Age"] = frame["Age"].astype("float64")
    frame.loc[::missing_every, "Age"] = np.nan
    return frame


def request_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as a JSON request sends them: null for a missing value."""
    return [
        {name: None if pd.isna(value) else value for name, value in record.items()}
        for record in frame.to_dict("records")
    ]


def matrix_model(path: Path, width: int) -> None:
    """An ONNX file of one 2-D float input ``X`` and softmax probabilities ``P`` of two
    classes, the first the likelier when the row sums to more than 0; it names no labels."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [width, 2], [1.0, -1.0] * width)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Z"]), helper.make_node("Softmax", ["Z"], ["P"])],
        "matrix",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("P", TensorProto.FLOAT, [None, 2])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, path)
