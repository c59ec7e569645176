"""The data plane on its own, with no HTTP: resolve, decode, predict, fall back, trace, count.

Each request goes through ``DataPlane.predict`` over the real registry (the committed
attrition models, real scikit-learn runtimes) and a real trace database (the ``database_url``
fixture: SQLite, and PostgreSQL when TEST_DATABASE_URL is set). Every case checks both what
the data plane answers or raises and the ``prediction`` row it committed.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import pytest
from sqlalchemy import Engine

from db.engine import make_engine
from db.tables import Outcome, Prediction
from db.traces import TraceRow, TraceWriter, make_trace_writer
from ml.manifest import InputSchema
from ml.runtime import Prediction as ModelPrediction
from registry.factories import framework_runtimes
from registry.registry import ModelRegistry
from serving.codecs import Body, InputCodec
from serving.dataplane import DataPlane, PredictResult
from serving.errors import (
    InvalidRequest,
    ModelNotFound,
    NoModelAvailable,
    NotRecorded,
    PayloadTooLarge,
    ServingError,
    UnsupportedMedia,
)
from serving.metrics import PrometheusListener
from serving.payload import InputRecord, Limits, Payload, PredictRequest
from tests.helpers import (
    attrition_example,
    copy_model,
    install_exploding_model,
    metric_value,
    only_trace,
    run_python,
    trace_rows,
)

LIMITS = Limits(max_batch_rows=8, max_audio_seconds=10.0)
DEFAULT = "attrition-logreg"
FALLBACK = "attrition-gbm"
FRAGILE = "attrition-fragile"
MAX_REFUSED_INPUT_BYTES = 4096
PREFIX_CHARS = 1000


# --- input sources: what a transport hands the data plane ------------------------------


class JsonSource:
    """A native request body, decoded by the model's codec as the REST transport does."""

    def __init__(self, document: Any, media_type: str = "application/json") -> None:
        self.data = document if isinstance(document, bytes) else orjson.dumps(document)
        self.media_type = media_type

    async def decode(
        self, codec: InputCodec, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        return await codec.from_body(Body(self.media_type, self.data), schema, limits, record)


class PayloadSource:
    """A source that hands over an already decoded payload."""

    def __init__(self, payload: Payload) -> None:
        self.payload = payload

    async def decode(
        self, codec: InputCodec, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        record.value = self.payload.record
        return self.payload


class FailingSource:
    """A source whose decoding fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def decode(
        self, codec: InputCodec, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        raise self.error


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def writer(engine: Engine) -> Iterator[TraceWriter]:
    writer = make_trace_writer(engine)
    writer.start()
    yield writer
    writer.close()


@pytest.fixture
def make_plane(attrition_store: Path, writer: TraceWriter) -> Iterator[Callable[..., DataPlane]]:
    """Data planes over the store as it is when called: real runtimes, metrics listener."""
    registries: list[ModelRegistry] = []

    def make(**options: Any) -> DataPlane:
        options = {"default": DEFAULT, "fallbacks": [FALLBACK], **options}
        registry = ModelRegistry.from_dir(
            attrition_store, framework_runtimes("cpu"), listener=PrometheusListener(), **options
        )
        registries.append(registry)
        return DataPlane(registry, writer, LIMITS)

    yield make
    for registry in registries:
        registry.loader.unload_all()


@pytest.fixture
def plane(make_plane: Callable[..., DataPlane]) -> DataPlane:
    return make_plane()


@pytest.fixture
def fragile_store(attrition_store: Path) -> Path:
    """The store plus ``attrition-fragile``: a pipeline (no compiled form) failing on Age 99."""
    install_exploding_model(attrition_store, name=FRAGILE)
    return attrition_store


# --- helpers -----------------------------------------------------------------------------


def request(model: str | None, source: Any, protocol: str = "rest") -> PredictRequest:
    return PredictRequest(model, source, f"req-{uuid4().hex}", protocol)


def features_request(model: str | None, features: dict[str, Any], **kw: Any) -> PredictRequest:
    return request(model, JsonSource({"features": features}), **kw)


def answer(plane: DataPlane, predict_request: PredictRequest) -> PredictResult:
    return asyncio.run(plane.predict(predict_request))


def refusal(
    plane: DataPlane, predict_request: PredictRequest, error_type: type[ServingError]
) -> ServingError:
    """The error ``predict`` raised: exactly ``error_type``, not a subclass of it."""
    with pytest.raises(error_type) as caught:
        asyncio.run(plane.predict(predict_request))
    assert type(caught.value) is error_type, repr(caught.value)
    return caught.value


def reference_predictions(
    registry: ModelRegistry, ref: str, rows: list[dict[str, Any]]
) -> list[ModelPrediction]:
    """What ``ref``'s runtime itself predicts on ``rows`` once validated."""

    async def run() -> list[ModelPrediction]:
        async with registry.serving(registry.resolve(ref)) as serving:
            runtime = serving.runtime
            assert runtime is not None and runtime.tabular_validator is not None
            assert not serving.is_fallback
            return runtime.predict(runtime.tabular_validator.validate(rows))

    return asyncio.run(run())


def as_output(predictions: list[ModelPrediction]) -> list[dict[str, Any]]:
    return [{"label": p.label, "probabilities": p.probabilities} for p in predictions]


def assert_refused_row(
    row: Prediction,
    outcome: Outcome,
    requested: str,
    *,
    model: str | None = DEFAULT,
    input: Any = None,
) -> None:
    assert row.outcome == outcome
    assert row.model_requested == requested
    assert row.model_name == model
    assert row.model_version == (None if model is None else "1")
    assert row.input == input
    assert row.output is None and row.label is None
    assert row.is_fallback is False and row.fallback_reason is None
    assert row.error
    assert row.latency_ms is not None and row.latency_ms >= 0
    assert row.completed_at is not None and row.received_at <= row.completed_at


def predictions_total(model: str, version: str, outcome: Outcome) -> float:
    return metric_value(
        "mldeploy_predictions_total", model=model, version=version, outcome=outcome.value
    )


# --- 1. a valid row ----------------------------------------------------------------------


def test_valid_row_is_answered_by_the_model_and_traced_whole(
    plane: DataPlane, engine: Engine
) -> None:
    features = attrition_example()
    predict_request = features_request(DEFAULT, features, protocol="v2")

    result = answer(plane, predict_request)

    expected = reference_predictions(plane.registry, DEFAULT, [features])
    assert result.request_id == predict_request.request_id
    assert result.requested == DEFAULT
    assert result.manifest == plane.registry.resolve(DEFAULT).manifest
    assert (result.manifest.name, result.manifest.version) == (DEFAULT, "1")
    assert not result.is_fallback and result.fallback_reason is None
    assert not result.is_batch and result.extras == {}
    assert result.predictions == expected
    [prediction] = result.predictions
    assert prediction.label in result.manifest.output.labels
    assert set(prediction.probabilities) == set(result.manifest.output.labels)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
    assert result.latency_ms > 0

    row = only_trace(engine, predict_request.request_id)
    assert re.fullmatch(r"[0-9a-f]{32}", row.id) and row.id != row.request_id
    assert row.protocol == "v2"
    assert row.outcome == Outcome.OK
    assert (row.model_requested, row.model_name, row.model_version) == (DEFAULT, DEFAULT, "1")
    assert row.is_fallback is False and row.fallback_reason is None
    assert row.input_kind == "tabular" and row.rows == 1
    assert row.input == features
    assert row.output == as_output(expected)
    assert row.label == prediction.label
    assert row.error is None
    assert row.latency_ms == result.latency_ms
    assert row.completed_at is not None and row.received_at <= row.completed_at


def test_a_batch_is_answered_row_by_row_and_its_input_stored_whole(
    plane: DataPlane, engine: Engine
) -> None:
    rows = [attrition_example() for _ in range(LIMITS.max_batch_rows)]
    for index, row in enumerate(rows):
        row["Age"] = 20 + 5 * index
    predict_request = request(DEFAULT, JsonSource({"instances": rows}))

    result = answer(plane, predict_request)

    expected = reference_predictions(plane.registry, DEFAULT, rows)
    assert result.is_batch and result.predictions == expected
    trace = only_trace(engine, predict_request.request_id)
    assert trace.outcome == Outcome.OK and trace.rows == len(rows)
    # Answered inputs are kept whole, even past the 4 KB to which refused ones are capped.
    assert len(orjson.dumps(rows)) > MAX_REFUSED_INPUT_BYTES
    assert trace.input == rows
    assert trace.output == as_output(expected)
    assert trace.label is None


def test_a_decoded_payload_is_served_as_given(plane: DataPlane, engine: Engine) -> None:
    features = attrition_example()
    payload = Payload("tabular", [features], {"as": "recorded"})
    predict_request = request(DEFAULT, PayloadSource(payload), protocol="v2")

    result = answer(plane, predict_request)

    assert result.predictions == reference_predictions(plane.registry, DEFAULT, [features])
    row = only_trace(engine, predict_request.request_id)
    assert row.outcome == Outcome.OK and row.input == {"as": "recorded"}


def test_a_reused_request_id_gets_a_row_per_request(plane: DataPlane, engine: Engine) -> None:
    source = JsonSource({"features": attrition_example()})
    first = answer(plane, PredictRequest(DEFAULT, source, "same-id"))
    second = answer(plane, PredictRequest(DEFAULT, source, "same-id"))
    assert first.request_id == second.request_id == "same-id"
    ids = [row.id for row in trace_rows(engine, "same-id")]
    assert len(set(ids)) == 2


# --- 2. the default model ----------------------------------------------------------------


@pytest.mark.parametrize("default", [DEFAULT, FALLBACK, f"{FALLBACK}@1"])
def test_no_model_named_is_served_by_the_default(
    make_plane: Callable[..., DataPlane], engine: Engine, default: str
) -> None:
    plane = make_plane(default=default)
    features = attrition_example()
    predict_request = features_request(None, features)

    result = answer(plane, predict_request)

    served = default.split("@")[0]
    assert result.requested == default
    assert (result.manifest.name, result.manifest.version) == (served, "1")
    assert not result.is_fallback
    assert result.predictions == reference_predictions(plane.registry, served, [features])
    row = only_trace(engine, predict_request.request_id)
    assert row.outcome == Outcome.OK and row.protocol == "rest"
    assert (row.model_requested, row.model_name, row.model_version) == (default, served, "1")


def test_no_model_named_and_no_default_is_not_found(
    make_plane: Callable[..., DataPlane], engine: Engine
) -> None:
    plane = make_plane(default=None)
    predict_request = features_request(None, attrition_example())

    error = refusal(plane, predict_request, ModelNotFound)

    assert error.outcome is Outcome.NOT_FOUND and "DEFAULT_MODEL" in error.message
    assert_refused_row(
        only_trace(engine, predict_request.request_id), Outcome.NOT_FOUND, "", model=None
    )


# --- 3. model references -----------------------------------------------------------------


@pytest.mark.parametrize("ref", ["no-such-model", f"{DEFAULT}@9"])
def test_unknown_model_is_not_found_and_traced(plane: DataPlane, engine: Engine, ref: str) -> None:
    predict_request = features_request(ref, attrition_example())

    error = refusal(plane, predict_request, ModelNotFound)

    assert error.outcome is Outcome.NOT_FOUND
    row = only_trace(engine, predict_request.request_id)
    # Nothing was decoded: the model, and so the input's codec, was never known.
    assert_refused_row(row, Outcome.NOT_FOUND, ref, model=None)
    assert row.input_kind == "unknown"
    assert row.error == error.message


def test_malformed_reference_is_an_invalid_request(plane: DataPlane, engine: Engine) -> None:
    predict_request = features_request("a@@b", attrition_example())

    error = refusal(plane, predict_request, InvalidRequest)

    assert error.outcome is Outcome.INVALID_INPUT
    assert set(error.problems) == {"model"} and "a@@b" in error.problems["model"]
    assert_refused_row(
        only_trace(engine, predict_request.request_id), Outcome.INVALID_INPUT, "a@@b", model=None
    )


def test_reference_with_nul_is_traced_without_it(plane: DataPlane, engine: Engine) -> None:
    predict_request = features_request("x\x00y", attrition_example())

    error = refusal(plane, predict_request, InvalidRequest)

    assert set(error.problems) == {"model"}
    row = only_trace(engine, predict_request.request_id)
    assert_refused_row(row, Outcome.INVALID_INPUT, "x\ufffdy", model=None)
    assert "\x00" not in row.model_requested and "\x00" not in (row.error or "")


def test_overlong_reference_is_traced_cut_to_the_column(plane: DataPlane, engine: Engine) -> None:
    ref = "a" * 300
    predict_request = features_request(ref, attrition_example())

    refusal(plane, predict_request, ModelNotFound)

    row = only_trace(engine, predict_request.request_id)
    assert_refused_row(row, Outcome.NOT_FOUND, ref[:128], model=None)


# --- 4. invalid input --------------------------------------------------------------------


def test_invalid_features_are_refused_naming_each_field(plane: DataPlane, engine: Engine) -> None:
    features = {**attrition_example(), "Age": 150, "BusinessTravel": "Sometimes"}
    del features["DailyRate"]
    predict_request = features_request(DEFAULT, features)

    error = refusal(plane, predict_request, InvalidRequest)

    assert error.outcome is Outcome.INVALID_INPUT
    assert set(error.problems) == {"Age", "BusinessTravel", "DailyRate"}
    assert "100" in error.problems["Age"]
    assert "Sometimes" in error.problems["BusinessTravel"]
    assert "missing" in error.problems["DailyRate"]
    row = only_trace(engine, predict_request.request_id)
    assert_refused_row(row, Outcome.INVALID_INPUT, DEFAULT, input=features)
    assert row.input_kind == "tabular"
    assert row.error == error.message and "Age" in row.error


def test_invalid_batch_rows_are_named_by_index(plane: DataPlane, engine: Engine) -> None:
    rows = [attrition_example(), {**attrition_example(), "Age": 5}]
    predict_request = request(DEFAULT, JsonSource({"instances": rows}))

    error = refusal(plane, predict_request, InvalidRequest)

    assert set(error.problems) == {"instances[1].Age"}
    assert_refused_row(
        only_trace(engine, predict_request.request_id), Outcome.INVALID_INPUT, DEFAULT, input=rows
    )


def test_a_body_that_is_not_json_is_traced_as_raw_text(plane: DataPlane, engine: Engine) -> None:
    predict_request = request(DEFAULT, JsonSource(b'{"features": {"Age": '))

    error = refusal(plane, predict_request, InvalidRequest)

    assert set(error.problems) == {"body"}
    assert_refused_row(
        only_trace(engine, predict_request.request_id),
        Outcome.INVALID_INPUT,
        DEFAULT,
        input={"raw": '{"features": {"Age": '},
    )


def padded_features(size_bytes: int) -> dict[str, Any]:
    """The example row plus an unknown ``Notes`` feature: ``size_bytes`` as compact JSON."""
    features = {**attrition_example(), "Notes": ""}
    features["Notes"] = "x" * (size_bytes - len(orjson.dumps(features)))
    assert len(orjson.dumps(features)) == size_bytes
    return features


@pytest.mark.parametrize(
    "size_bytes", [MAX_REFUSED_INPUT_BYTES, MAX_REFUSED_INPUT_BYTES + 1, 20_000]
)
def test_refused_input_is_stored_whole_up_to_4kb_then_capped(
    plane: DataPlane, engine: Engine, size_bytes: int
) -> None:
    features = padded_features(size_bytes)
    predict_request = features_request(DEFAULT, features)

    error = refusal(plane, predict_request, InvalidRequest)

    assert set(error.problems) == {"Notes"}
    row = only_trace(engine, predict_request.request_id)
    text = orjson.dumps(features)
    if size_bytes <= MAX_REFUSED_INPUT_BYTES:
        stored: Any = features
    else:
        stored = {
            "truncated": True,
            "size_bytes": size_bytes,
            "sha256": hashlib.sha256(text).hexdigest(),
            "prefix": text[:PREFIX_CHARS].decode(),
        }
    assert_refused_row(row, Outcome.INVALID_INPUT, DEFAULT, input=stored)


# --- 5. sources that fail ----------------------------------------------------------------


@pytest.mark.parametrize("error_type", [PayloadTooLarge, UnsupportedMedia])
def test_a_source_error_is_raised_as_is_and_traced(
    plane: DataPlane, engine: Engine, error_type: type[ServingError]
) -> None:
    raised = error_type(f"{error_type.__name__} from the transport")
    predict_request = request(DEFAULT, FailingSource(raised))

    error = refusal(plane, predict_request, error_type)

    assert error is raised and error.outcome is Outcome.INVALID_INPUT
    row = only_trace(engine, predict_request.request_id)
    assert_refused_row(row, Outcome.INVALID_INPUT, DEFAULT)
    assert row.error == raised.message


def test_a_batch_over_the_limit_is_payload_too_large(plane: DataPlane, engine: Engine) -> None:
    body = orjson.dumps({"instances": [{}] * (LIMITS.max_batch_rows + 1)})
    predict_request = request(DEFAULT, JsonSource(body))

    error = refusal(plane, predict_request, PayloadTooLarge)

    assert "MAX_BATCH_ROWS" in error.message
    # Refused before it parsed: the trace keeps the body as text.
    assert_refused_row(
        only_trace(engine, predict_request.request_id),
        Outcome.INVALID_INPUT,
        DEFAULT,
        input={"raw": body.decode()},
    )


def test_a_large_refused_body_that_never_parsed_costs_a_small_row(
    plane: DataPlane, engine: Engine
) -> None:
    body = orjson.dumps({"instances": [attrition_example()] * 40})
    assert len(body) > 5 * MAX_REFUSED_INPUT_BYTES
    predict_request = request(DEFAULT, JsonSource(body))

    refusal(plane, predict_request, PayloadTooLarge)

    row = only_trace(engine, predict_request.request_id)
    assert row.outcome == Outcome.INVALID_INPUT
    assert isinstance(row.input, dict)
    assert len(orjson.dumps(row.input)) <= MAX_REFUSED_INPUT_BYTES + 256


def test_a_body_that_is_not_json_media_is_unsupported(plane: DataPlane, engine: Engine) -> None:
    predict_request = request(DEFAULT, JsonSource(b"Age=30", media_type="text/plain"))

    error = refusal(plane, predict_request, UnsupportedMedia)

    assert "text/plain" in error.message
    assert_refused_row(
        only_trace(engine, predict_request.request_id), Outcome.INVALID_INPUT, DEFAULT
    )


def test_an_unexpected_source_failure_is_an_internal_error(
    plane: DataPlane, engine: Engine
) -> None:
    predict_request = request(DEFAULT, FailingSource(RuntimeError("transport bug")))

    error = refusal(plane, predict_request, ServingError)

    assert error.outcome is Outcome.ERROR and error.message == "internal error"
    assert_refused_row(only_trace(engine, predict_request.request_id), Outcome.ERROR, DEFAULT)


# --- 6. fallback -------------------------------------------------------------------------


def test_a_model_failing_on_a_row_is_replaced_by_the_same_task_fallback(
    fragile_store: Path, make_plane: Callable[..., DataPlane], engine: Engine
) -> None:
    plane = make_plane(fallbacks=[FALLBACK])
    metric = {"requested_model": FRAGILE, "model": FALLBACK, "version": "1"}

    fine = answer(plane, features_request(FRAGILE, attrition_example()))
    assert fine.manifest.name == FRAGILE and not fine.is_fallback

    features = {**attrition_example(), "Age": 99}
    predict_request = features_request(FRAGILE, features)
    before = metric_value("mldeploy_fallbacks_total", **metric)
    result = answer(plane, predict_request)
    after = metric_value("mldeploy_fallbacks_total", **metric)

    assert result.requested == FRAGILE
    assert (result.manifest.name, result.manifest.version) == (FALLBACK, "1")
    assert result.is_fallback
    assert result.fallback_reason is not None
    assert f"{FRAGILE}@1 failed" in result.fallback_reason
    assert "FloatingPointError" in result.fallback_reason
    expected = reference_predictions(plane.registry, FALLBACK, [features])
    assert result.predictions == expected
    assert after == before + 1

    row = only_trace(engine, predict_request.request_id)
    assert row.outcome == Outcome.OK
    assert (row.model_requested, row.model_name, row.model_version) == (FRAGILE, FALLBACK, "1")
    assert row.is_fallback is True and row.fallback_reason == result.fallback_reason
    assert row.input == features
    assert row.output == as_output(expected) and row.label == expected[0].label


@pytest.mark.parametrize("fallbacks", ["none", "other-task", "broken"])
def test_no_usable_fallback_is_no_model_available(
    fragile_store: Path, make_plane: Callable[..., DataPlane], engine: Engine, fallbacks: str
) -> None:
    if fallbacks == "none":
        plane = make_plane(fallbacks=[])
    elif fallbacks == "other-task":
        copy_model(fragile_store, "instrument-mfcc")
        plane = make_plane(fallbacks=["instrument-mfcc"])
    else:
        artifact = fragile_store / FALLBACK / "1" / "model.compiled.json"
        artifact.write_bytes(artifact.read_bytes() + b" ")
        plane = make_plane(fallbacks=[FALLBACK])
    features = {**attrition_example(), "Age": 99}
    predict_request = features_request(FRAGILE, features)

    error = refusal(plane, predict_request, NoModelAvailable)

    assert error.outcome is Outcome.UNAVAILABLE
    assert "FloatingPointError" in error.message
    assert "no fallback model could serve" in error.message
    row = only_trace(engine, predict_request.request_id)
    assert_refused_row(row, Outcome.UNAVAILABLE, FRAGILE, model=FRAGILE, input=features)
    assert row.error == error.message


# --- 7. the trace database ---------------------------------------------------------------


def test_a_prediction_whose_trace_cannot_be_written_is_not_answered(
    plane: DataPlane, engine: Engine
) -> None:
    answer(plane, features_request(DEFAULT, attrition_example()))  # the writer is connected
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE prediction")
    ok_before = predictions_total(DEFAULT, "1", Outcome.OK)
    unavailable_before = predictions_total(DEFAULT, "1", Outcome.UNAVAILABLE)
    failures_before = metric_value("mldeploy_trace_write_failures_total")

    error = refusal(plane, features_request(DEFAULT, attrition_example()), NotRecorded)

    assert error.outcome is Outcome.UNAVAILABLE and "recorded" in error.message
    assert predictions_total(DEFAULT, "1", Outcome.OK) == ok_before
    assert predictions_total(DEFAULT, "1", Outcome.UNAVAILABLE) == unavailable_before + 1
    # A refusal whose trace cannot be written is no answer without a row either: a 503.
    refusal(plane, features_request("no-such-model", attrition_example()), NotRecorded)
    # Both count for the trace-write alert (deploy/prometheus/rules.yml).
    assert metric_value("mldeploy_trace_write_failures_total") == failures_before + 2


def test_ready_while_the_database_answers(plane: DataPlane) -> None:
    assert asyncio.run(plane.is_ready()) is True


@pytest.mark.parametrize("database", ["sqlite-folder", "postgresql-closed-port"])
def test_not_ready_and_not_answered_when_the_database_is_unreachable(
    attrition_store: Path, tmp_path: Path, database: str
) -> None:
    if database == "sqlite-folder":
        folder = tmp_path / "not-a-file.db"
        folder.mkdir()
        url = f"sqlite:///{folder}"  # a folder: SQLite cannot open it, even as root
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    engine = make_engine(url)
    writer = make_trace_writer(engine)
    writer.start()
    registry = ModelRegistry.from_dir(attrition_store, framework_runtimes("cpu"), default=DEFAULT)
    plane = DataPlane(registry, writer, LIMITS)
    try:
        assert asyncio.run(plane.is_ready()) is False
        refusal(plane, features_request(DEFAULT, attrition_example()), NotRecorded)
    finally:
        writer.close()
        registry.loader.unload_all()
        engine.dispose()


# --- 8. metrics --------------------------------------------------------------------------


def test_predictions_are_counted_by_model_version_and_outcome(plane: DataPlane) -> None:
    counted = [
        (DEFAULT, "1", Outcome.OK),
        (DEFAULT, "1", Outcome.INVALID_INPUT),
        ("unknown", "", Outcome.NOT_FOUND),
        (DEFAULT, "1", Outcome.NOT_FOUND),
    ]
    before = {key: predictions_total(*key) for key in counted}
    rows_before = metric_value("mldeploy_predicted_rows_total", model=DEFAULT, version="1")

    answer(plane, features_request(DEFAULT, attrition_example()))
    answer(plane, request(DEFAULT, JsonSource({"instances": [attrition_example()] * 3})))
    refusal(plane, features_request(DEFAULT, {**attrition_example(), "Age": 3}), InvalidRequest)
    refusal(plane, features_request("no-such-model", attrition_example()), ModelNotFound)

    deltas = {key: predictions_total(*key) - before[key] for key in counted}
    assert deltas == {
        (DEFAULT, "1", Outcome.OK): 2,
        (DEFAULT, "1", Outcome.INVALID_INPUT): 1,
        ("unknown", "", Outcome.NOT_FOUND): 1,
        (DEFAULT, "1", Outcome.NOT_FOUND): 0,
    }
    rows_after = metric_value("mldeploy_predicted_rows_total", model=DEFAULT, version="1")
    assert rows_after - rows_before == 4


# --- 9. no web framework -----------------------------------------------------------------

_IMPORTS_NO_WEB_FRAMEWORK = """
import json, sys
import serving.dataplane, serving.codecs, serving.v2_codec, serving.errors
import serving.payload, serving.metrics, serving.ids
web = sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette"))
print(json.dumps(web))
"""


def test_the_serving_package_imports_no_web_framework() -> None:
    assert run_python(_IMPORTS_NO_WEB_FRAMEWORK) == []


class _NeverCommits(TraceWriter):
    """A writer whose database never answers: every row stays queued."""

    def start(self) -> None:
        """Nothing to start."""

    def close(self) -> None:
        """Nothing to flush: nothing ever commits."""

    def record(self, row: TraceRow) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()


def test_a_commit_that_never_comes_is_a_503_in_time(attrition_store: Path, tmp_path: Path) -> None:
    registry = ModelRegistry.from_dir(attrition_store, framework_runtimes("cpu"), default=DEFAULT)
    writer = _NeverCommits(make_engine(f"sqlite:///{tmp_path / 'unused.db'}"))
    plane = DataPlane(registry, writer, LIMITS, commit_timeout=0.2)
    started = time.monotonic()
    error = refusal(plane, features_request(DEFAULT, attrition_example()), NotRecorded)
    assert time.monotonic() - started < 2.0
    assert "could not be recorded" in error.message
    registry.loader.unload_all()


@pytest.mark.parametrize(
    "body",
    [b"not json" * 1000, orjson.dumps({"features": {**attrition_example(), "Age": 7}})],
    ids=["unparsable", "invalid"],
)
def test_a_refused_request_is_freed_without_the_cyclic_collector(
    plane: DataPlane, body: bytes
) -> None:
    # A refusal that referred to itself kept its whole request (body, decoded input) alive
    # until the cyclic collector ran: a few requests of MAX_BODY_BYTES took gigabytes.
    source = JsonSource(body)
    alive = weakref.ref(source)
    predict_request = request(DEFAULT, source)
    del source

    async def refused(asked: PredictRequest) -> bool:
        # Caught here, as a transport does: the event loop's task keeps no exception.
        try:
            await plane.predict(asked)
        except InvalidRequest:
            return True
        return False

    gc.collect()
    gc.disable()
    try:
        assert asyncio.run(refused(predict_request))
        del predict_request
        assert alive() is None, "the refused request outlived its refusal"
    finally:
        gc.enable()


class _FrozenDatabase(TraceWriter):
    """A writer whose database never answers a probe until released."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.probes = 0
        self.release = threading.Event()

    def start(self) -> None:
        """Nothing to start."""

    def close(self) -> None:
        """Nothing to flush."""

    def record(self, row: TraceRow) -> asyncio.Future[None]:
        raise AssertionError("no row in this test")

    def database_reachable(self) -> bool:
        self.probes += 1
        self.release.wait(10)
        return True


def test_readiness_probes_a_frozen_database_once_at_a_time(
    attrition_store: Path, tmp_path: Path
) -> None:
    # A probe per call left one blocked thread each: the pool that model loads and audio
    # decodes share was soon full.
    registry = ModelRegistry.from_dir(attrition_store, framework_runtimes("cpu"), default=DEFAULT)
    writer = _FrozenDatabase(make_engine(f"sqlite:///{tmp_path / 'unused.db'}"))
    plane = DataPlane(registry, writer, LIMITS)

    async def probe_many() -> list[bool]:
        answers = list(await asyncio.gather(*(plane.is_ready() for _ in range(5))))
        writer.release.set()  # the database thaws: the one blocked probe ends
        return answers

    try:
        assert asyncio.run(probe_many()) == [False] * 5
        assert writer.probes == 1
    finally:
        writer.release.set()
