"""The ONNX runtime (framework "onnx"): inputs planned from the graph, batches in one run,
labels decided as scikit-learn decides them, and no scikit-learn at serving time."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from ml import onnx_runtime
from ml.errors import ModelRuntimeError
from ml.labels import LabelRule
from ml.manifest import CategoricalFeature, Feature, NumericFeature, OutputSchema
from ml.onnx_runtime import OnnxRuntime
from ml.runtime import runtime_class
from tests.byom import matrix_model
from tests.factories import StoredModel, make_manifest, tabular_input, write_model
from tests.helpers import run_python

NUMBERS: list[Feature] = [
    NumericFeature(name="a", type="number"),
    NumericFeature(name="b", type="number"),
]


def onnx_store(
    folder: Path,
    model: Path,
    features: list[Feature] | None = None,
    labels: tuple[str, str] = ("low", "high"),
) -> StoredModel:
    """The ONNX file ``model`` registered under ``folder/models`` as ``matrix@1``."""
    features = features or NUMBERS
    example = {f.name: "x" if isinstance(f, CategoricalFeature) else 1.0 for f in features}
    manifest = make_manifest(
        "matrix",
        framework="onnx",
        artifact="model.onnx",
        input=tabular_input(features, example=example),
        labels=labels,
        positive_label=None,
        decision_threshold=None,
    )
    return write_model(folder / "models", manifest, artifact=model)


def matrix_store(folder: Path, features: list[Feature] | None = None) -> StoredModel:
    """``matrix_model`` (one 2-D input of two columns) as ``matrix@1``, labels low and high."""
    folder.mkdir(parents=True, exist_ok=True)
    matrix_model(folder / "matrix.onnx", 2)
    return onnx_store(folder, folder / "matrix.onnx", features)


def loaded(stored: StoredModel, device: str = "cpu") -> OnnxRuntime:
    runtime = OnnxRuntime(stored.manifest, stored.model_dir, device)
    runtime.load()
    runtime.warm_up()
    return runtime


def test_onnx_is_a_registered_framework() -> None:
    assert runtime_class("onnx") is OnnxRuntime


def test_a_batch_is_one_run_with_each_row_its_own_answer(tmp_path: Path) -> None:
    runtime = loaded(matrix_store(tmp_path))
    rows = [{"a": 2.0, "b": 1.0}, {"a": -3.0, "b": 0.5}, {"a": 0.0, "b": 0.25}]
    batch = runtime.predict(rows)
    assert [p.label for p in batch] == ["low", "high", "low"]
    assert batch == [runtime.predict([row])[0] for row in rows]
    # softmax([s, -s]) of the row's sum s.
    expected_low = 1 / (1 + np.exp(-2 * 3.0))
    assert batch[0].probabilities["low"] == pytest.approx(expected_low, abs=1e-6)
    # A missing number is NaN, which this graph does not impute: the model fails, not NaN.
    with pytest.raises(ModelRuntimeError, match="not numbers"):
        runtime.predict([{"a": None, "b": 1.0}])


def test_warm_up_times_a_row_to_decide_whether_it_runs_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rule, not this machine's speed: a busy CI runner may take more than 100 us a row.
    runtime = loaded(matrix_store(tmp_path))
    monkeypatch.setattr(onnx_runtime, "INLINE_MAX_SECONDS", 1.0)
    runtime.warm_up()
    assert runtime.runs_inline
    monkeypatch.setattr(onnx_runtime, "INLINE_MAX_SECONDS", 0.0)
    runtime.warm_up()
    assert not runtime.runs_inline


def test_a_zipmap_output_is_read_by_label(tmp_path: Path) -> None:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 3.0], [3.0, 1.0]] * 5)
    labels = np.array(["cold", "warm", "cold", "warm"] * 5)
    classifier = LogisticRegression().fit(x, labels)
    # skl2onnx's default for an array: one input "X", and a ZipMap of label -> probability.
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(to_onnx(classifier, x[:1].astype(np.float32)).SerializeToString())
    runtime = loaded(onnx_store(tmp_path, path, labels=("warm", "cold")))
    rows = [[0.0, 1.0], [3.0, 1.0]]
    answers = runtime.predict([{"a": a, "b": b} for a, b in rows])
    expected = classifier.predict_proba(np.array(rows))  # columns: cold, warm
    for answer, (cold, warm) in zip(answers, expected, strict=True):
        assert answer.probabilities == pytest.approx({"warm": warm, "cold": cold}, abs=1e-6)
    assert [a.label for a in answers] == list(classifier.predict(np.array(rows)))


def test_inputs_that_do_not_fit_the_schema_are_refused_at_load(tmp_path: Path) -> None:
    cases = {
        "is a tensor(float), feature 'b' a category": [
            NUMBERS[0],
            CategoricalFeature(name="b", type="category", categories=["x"]),
        ],
        "has 2 columns, the schema 3 features": [*NUMBERS, NumericFeature(name="c", type="number")],
    }
    for number, (message, features) in enumerate(cases.items()):
        stored = matrix_store(tmp_path / str(number), features)
        runtime = OnnxRuntime(stored.manifest, stored.model_dir)
        with pytest.raises(ModelRuntimeError, match=re.escape(message)):
            runtime.load()


def test_cuda_asked_for_without_the_gpu_build_runs_on_the_cpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ml.onnx_runtime"):
        runtime = loaded(matrix_store(tmp_path), device="cuda")
    assert runtime.providers[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" not in runtime.providers:
        assert "install onnxruntime-gpu" in caplog.text
    assert loaded(matrix_store(tmp_path / "auto"), device="auto").providers == [
        "CPUExecutionProvider"
    ]


def test_predicting_before_load_is_a_model_error(tmp_path: Path) -> None:
    stored = matrix_store(tmp_path)
    with pytest.raises(ModelRuntimeError, match="not loaded"):
        OnnxRuntime(stored.manifest, stored.model_dir).predict([{"a": 1.0, "b": 1.0}])


def test_near_ties_go_to_the_first_label_as_scikit_learn_breaks_exact_ones() -> None:
    output = OutputSchema(labels=["No", "Yes"], positive_label="Yes")
    exact, float32 = LabelRule(output), LabelRule(output, tie_tolerance=1e-5)
    near_tie = {"No": 0.49999997, "Yes": 0.50000003}
    assert exact.decide(near_tie) == "Yes"
    assert float32.decide(near_tie) == "No"
    assert float32.decide({"No": 0.4, "Yes": 0.6}) == "Yes"
    thresholded = OutputSchema(labels=["No", "Yes"], positive_label="Yes", decision_threshold=0.3)
    assert LabelRule(thresholded, tie_tolerance=1e-5).decide({"No": 0.65, "Yes": 0.35}) == "Yes"


_SERVING = """
import json, sys
from pathlib import Path
from ml.manifest import read_manifest
from ml.runtime import runtime_class
model_dir = Path(sys.argv[1])
manifest = read_manifest(model_dir / "manifest.json")
runtime = runtime_class(manifest.framework)(manifest, model_dir)
runtime.load()
label = runtime.predict([{"a": 1.0, "b": 2.0}])[0].label
heavy = {"sklearn", "skl2onnx", "onnx", "pandas", "torch"} & {m.split(".")[0] for m in sys.modules}
print(json.dumps({"label": label, "imported": sorted(heavy)}))
"""


def test_serving_an_onnx_model_imports_no_training_framework(tmp_path: Path) -> None:
    stored = matrix_store(tmp_path)
    result = run_python(_SERVING, str(stored.model_dir))
    assert result == {"label": "low", "imported": []}
    assert json.loads((stored.model_dir / "manifest.json").read_text())["framework"] == "onnx"
