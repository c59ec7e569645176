"""Runtime of ONNX models (framework "onnx"): ONNX Runtime, on the CPU or a CUDA GPU.

Serving imports onnxruntime and numpy only, neither scikit-learn nor skl2onnx: converting a
pipeline and proving the conversion is packaging's work (``python -m registry add``).

The model's inputs are read from its session: either one input per feature, named as the
feature (what skl2onnx writes for a DataFrame's columns), or a single 2-D numeric input whose
columns are the schema's features in order. Its probabilities are the output named
``probabilities``, else the first float tensor of shape [N, classes] or sequence of maps (a
ZipMap); a tensor's columns are in ``output.labels`` order, a map's keys name their labels.
A batch is one ``run`` call: one array per input for all its rows.

``DEVICE=cuda`` puts the session on the CUDAExecutionProvider when onnxruntime has one (the
``onnxruntime-gpu`` build); ``auto`` and ``cpu`` keep it on the CPU, where one tabular row
costs less than its copy to a GPU and back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ml.errors import ModelRuntimeError
from ml.labels import LabelRule
from ml.manifest import CategoricalFeature, Feature, ModelManifest, TabularInput
from ml.runtime import ModelRuntime, Prediction

logger = logging.getLogger(__name__)

PROBABILITIES_OUTPUT = "probabilities"
_NUMERIC_DTYPES: dict[str, type[np.generic]] = {
    "tensor(double)": np.float64,
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}
_FLOAT_TYPES = ("tensor(double)", "tensor(float)")
_STRING_TYPE = "tensor(string)"
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
FLOAT32_TIE_TOLERANCE = 1e-5
"""float32 probabilities closer than this are a tie (see ``ml.labels.LabelRule``): a forest's
sum of per-tree float32 probabilities is off by up to about 1e-6."""
INLINE_MAX_SECONDS = 100e-6
"""A model whose one-row prediction takes less runs on the event loop, as the sklearn runtime
lets a compiled form of about 100 µs a row: a hop to a thread would cost more."""
_TIMED_CALLS = 5


@dataclass(frozen=True, slots=True)
class ModelInput:
    """One input of the ONNX graph and the features it carries, in order."""

    name: str
    dtype: Any
    """The numpy dtype of its array: a numeric type, or ``object`` for strings."""
    features: tuple[str, ...]
    rank: int


@dataclass(frozen=True, slots=True)
class InputGroup:
    """The inputs of one dtype, cut from one array of all their features: one numpy call per
    batch and dtype, not one per input (30 inputs cost 40 µs a row that way)."""

    dtype: Any
    features: tuple[str, ...]
    inputs: tuple[tuple[str, slice, int], ...]
    """Each input's name, its columns of the array, and its rank."""

    @classmethod
    def of(cls, inputs: Sequence[ModelInput]) -> list[InputGroup]:
        groups = []
        for dtype in dict.fromkeys(model_input.dtype for model_input in inputs):
            features: list[str] = []
            cut = []
            for model_input in (i for i in inputs if i.dtype == dtype):
                start = len(features)
                features.extend(model_input.features)
                cut.append((model_input.name, slice(start, len(features)), model_input.rank))
            groups.append(cls(dtype, tuple(features), tuple(cut)))
        return groups

    def feed(self, rows: Sequence[Mapping[str, object]]) -> dict[str, np.ndarray]:
        """Each input's array of the rows; a null number becomes NaN (numpy's own cast)."""
        values = np.array([[row[name] for name in self.features] for row in rows], self.dtype)
        return {
            name: values[:, columns] if rank == 2 else values[:, columns.start]
            for name, columns, rank in self.inputs
        }


class OnnxRuntime(ModelRuntime):
    """A classifier in ONNX, run by ONNX Runtime on validated feature dicts."""

    framework: ClassVar[str] = "onnx"

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        if not isinstance(self.manifest.input, TabularInput):
            raise ModelRuntimeError(f"{self.manifest.ref}: the onnx runtime needs tabular input")
        self.schema: TabularInput = self.manifest.input
        self.labels = list(self.manifest.output.labels)
        self._session: Any = None
        self._inputs: list[InputGroup] = []
        self._output = ""
        self._output_is_map = False
        self._decide = LabelRule(self.manifest.output).decide

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, best first (empty until loaded)."""
        return list(self._session.get_providers()) if self._session is not None else []

    def load(self) -> None:
        started = time.perf_counter()
        try:
            session = open_session(self.artifact_path, self.device, self.manifest.ref)
            inputs = InputGroup.of(plan_inputs(session.get_inputs(), self.schema))
            output, is_map, is_float32 = probabilities_output(session.get_outputs())
        except ModelRuntimeError as error:
            raise ModelRuntimeError(f"{self.manifest.ref}: {error}") from error
        except Exception as error:  # onnxruntime's own errors: a broken or unsupported graph
            raise ModelRuntimeError(f"{self.manifest.ref} failed to load: {error!r}") from error
        self._session, self._inputs = session, inputs
        self._output, self._output_is_map = output, is_map
        tolerance = FLOAT32_TIE_TOLERANCE if is_float32 else 0.0
        self._decide = LabelRule(self.manifest.output, tie_tolerance=tolerance).decide
        self.ready = True
        logger.info(
            "Loaded %s in %.3f s (onnxruntime on %s)",
            self.manifest.ref,
            time.perf_counter() - started,
            ", ".join(self.providers),
        )

    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        """Predict validated feature dicts (the output of ``tabular_validator.validate``)."""
        if self._session is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        if not instances:
            return []
        try:
            feed = {
                name: array
                for group in self._inputs
                for name, array in group.feed(instances).items()
            }
            (probabilities,) = self._session.run([self._output], feed)
            rows = self._probability_rows(probabilities)
        except ModelRuntimeError:
            raise
        except Exception as error:  # the session's failures are the model's, not the input's
            raise ModelRuntimeError(f"{self.manifest.ref} failed to predict: {error!r}") from error
        predictions = []
        for row in rows:
            by_label = dict(zip(self.labels, row, strict=True))
            predictions.append(Prediction(self._decide(by_label), by_label))
        return predictions

    def warm_up(self) -> None:
        """Predict the example once, then time it to decide whether it may run inline."""
        assert self.tabular_validator is not None  # the input is tabular (checked in __init__)
        rows = self.tabular_validator.validate([self.schema.example])
        self.predict(rows)
        seconds = []
        for _ in range(_TIMED_CALLS):
            started = time.perf_counter()
            self.predict(rows)
            seconds.append(time.perf_counter() - started)
        self.runs_inline = min(seconds) <= INLINE_MAX_SECONDS

    def unload(self) -> None:
        self._session = None
        self.runs_inline = False
        super().unload()

    def _probability_rows(self, probabilities: Any) -> list[list[float]]:
        """One list per row, in ``labels`` order; a model that answers NaN has failed."""
        if self._output_is_map:
            probabilities = np.array(
                [[row[label] for label in self.labels] for row in _by_label(probabilities)]
            )
        if probabilities.ndim != 2 or probabilities.shape[1] != len(self.labels):
            raise ModelRuntimeError(
                f"{self.manifest.ref}: the model answers probabilities of shape "
                f"{list(probabilities.shape)}, the manifest promises {len(self.labels)} labels"
            )
        if not np.isfinite(probabilities).all():
            raise ModelRuntimeError(
                f"{self.manifest.ref} answered probabilities that are not numbers"
            )
        rows: list[list[float]] = probabilities.tolist()
        return rows


def open_session(path: Path, device: str, ref: str) -> Any:
    """An ONNX Runtime session of the model at ``path``, on the providers ``device`` asks for."""
    import onnxruntime  # only here: registering an ONNX model costs nothing until it loads

    options = onnxruntime.SessionOptions()
    # One thread: a request costs milliseconds at most, and pooled threads would spin on the
    # cores that the server's event loop, its trace writer and its other workers need.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        str(path),
        sess_options=options,
        providers=_providers(device, onnxruntime.get_available_providers(), ref),
    )


def _providers(device: str, available: Sequence[str], ref: str) -> list[str]:
    if device != "cuda":
        return [_CPU]
    if _CUDA in available:
        return [_CUDA, _CPU]
    logger.warning(
        "DEVICE=cuda, but this onnxruntime has no %s (install onnxruntime-gpu): %s runs on the CPU",
        _CUDA,
        ref,
    )
    return [_CPU]


def plan_inputs(nodes: Sequence[Any], schema: TabularInput) -> list[ModelInput]:
    """How the schema's features feed the graph's inputs (``NodeArg``s of a session)."""
    features = {feature.name: feature for feature in schema.features}
    names = [node.name for node in nodes]
    if sorted(names) == sorted(features):
        return [_model_input(node, [features[node.name]]) for node in nodes]
    if len(nodes) == 1 and len(nodes[0].shape or ()) == 2:
        return [_model_input(nodes[0], list(schema.features))]
    raise ModelRuntimeError(
        f"the model's inputs {names} are not the features {list(features)}: it needs one "
        "input per feature, named as the feature, or a single 2-D input of every feature"
    )


def _model_input(node: Any, features: list[Feature]) -> ModelInput:
    """The input ``node`` fed with ``features``, once their types fit its type."""
    is_string = node.type == _STRING_TYPE
    if not is_string and node.type not in _NUMERIC_DTYPES:
        raise ModelRuntimeError(f"input {node.name!r} is a {node.type}, which is not supported")
    for feature in features:
        if isinstance(feature, CategoricalFeature) != is_string:
            raise ModelRuntimeError(
                f"input {node.name!r} is a {node.type}, feature {feature.name!r} a {feature.type}"
            )
        if feature.nullable and node.type not in _FLOAT_TYPES:
            raise ModelRuntimeError(
                f"feature {feature.name!r} may be null, which input {node.name!r} "
                f"({node.type}) cannot hold: only float inputs take a missing value (NaN)"
            )
    width = node.shape[-1] if len(features) > 1 else 1
    if isinstance(width, int) and width != len(features):
        raise ModelRuntimeError(
            f"input {node.name!r} has {width} columns, the schema {len(features)} features"
        )
    return ModelInput(
        name=node.name,
        dtype=object if is_string else _NUMERIC_DTYPES[node.type],
        features=tuple(feature.name for feature in features),
        rank=len(node.shape or (None, None)),
    )


def probabilities_output(nodes: Sequence[Any]) -> tuple[str, bool, bool]:
    """The output holding the probabilities: its name, whether it is a ZipMap's sequence of
    maps, and whether its numbers are float32."""
    named = [node for node in nodes if node.name == PROBABILITIES_OUTPUT]
    for node in named or nodes:
        if node.type in _FLOAT_TYPES and len(node.shape or ()) == 2:
            return node.name, False, node.type == "tensor(float)"
        if node.type.startswith("seq(map("):
            return node.name, True, node.type.endswith("tensor(float)))")
    raise ModelRuntimeError(
        f"none of the outputs {[f'{node.name}: {node.type}' for node in nodes]} holds class "
        "probabilities (a float tensor [N, classes], or a ZipMap's sequence of maps)"
    )


def _by_label(maps: Sequence[Mapping[Any, float]]) -> list[dict[str, float]]:
    """A ZipMap's rows keyed by label text (its keys are strings or int64 class labels)."""
    return [{str(key): value for key, value in row.items()} for row in maps]
