"""The data plane: one prediction request, from any transport, to a traced answer.

Resolve the model, decode and validate the input with the codec of its kind, predict with
fallback, then trace and count. The trace row is written whole once the request ends, and
the answer is returned only once the commit that holds it is done: an acknowledged
prediction is in the database. Transports (native REST, Open Inference Protocol) only
decode their wire format into a ``PredictRequest`` and encode the ``PredictResult``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from db.tables import Outcome, utc_now
from db.traces import TraceRow, TraceWriteError, TraceWriter
from ml.errors import InvalidInputError, describe_error
from ml.manifest import ModelManifest
from ml.runtime import ModelRuntime, Prediction
from registry.catalogue import ModelEntry
from registry.registry import ModelRegistry, Serving
from serving.codecs import InputCodec, codec_for
from serving.errors import ServingError, as_serving_error
from serving.ids import new_id
from serving.metrics import TRACE_WRITE_FAILURES, PredictionMeter
from serving.payload import InputRecord, Limits, Payload, PredictRequest

logger = logging.getLogger(__name__)

_MAX_REF_CHARS = 128
_MAX_ERROR_CHARS = 4000
_INLINE_MAX_ROWS = 16
_READY_TIMEOUT_SECONDS = 1.5
DEFAULT_COMMIT_TIMEOUT_SECONDS = 5.0
# A refused input is stored whole up to this size; past it, its size, hash and a prefix.
_MAX_REFUSED_INPUT_BYTES = 4096
_REFUSED_PREFIX_CHARS = 1000


@dataclass(slots=True)  # not frozen: one per request, and a frozen __init__ costs 3 times more
class PredictResult:
    """The answer to a prediction request, and which model actually gave it."""

    request_id: str
    requested: str
    """The model reference as asked (the default model's when none was named)."""
    manifest: ModelManifest
    """The model version that served: the one asked for, or its fallback."""
    fallback_reason: str | None
    predictions: list[Prediction]
    outputs: list[dict[str, Any]]
    """Each prediction as the trace stores it and JSON answers carry it: label, probabilities."""
    is_batch: bool
    latency_ms: float
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def is_fallback(self) -> bool:
        return self.fallback_reason is not None


@dataclass(slots=True)
class _Call:
    """One request in flight: its row's key, what it asked for and when."""

    trace_id: str
    request: PredictRequest
    requested: str
    received_at: datetime
    started: float
    record: InputRecord = field(default_factory=InputRecord)
    entry: ModelEntry | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def row(self, input_kind: str, record: Any, outcome: Outcome, **fields: Any) -> TraceRow:
        """This request's trace row, ended now."""
        return TraceRow(
            self.trace_id,
            self.request.request_id,
            self.request.protocol,
            self.received_at,
            utc_now(),
            self.requested,
            input_kind,
            record,
            outcome,
            latency_ms=self.elapsed_ms(),
            **fields,
        )


class DataPlane:
    """The predict path that every transport calls; it knows nothing of HTTP."""

    def __init__(
        self,
        registry: ModelRegistry,
        writer: TraceWriter,
        limits: Limits,
        *,
        commit_timeout: float = DEFAULT_COMMIT_TIMEOUT_SECONDS,
    ) -> None:
        self.registry, self.writer, self.limits = registry, writer, limits
        self.meter = PredictionMeter()
        self.commit_timeout = commit_timeout
        """How long a request waits for its row's commit before it is answered 503."""
        self._probe: asyncio.Future[bool] | None = None

    async def not_ready_reason(self) -> str | None:
        """Why this data plane cannot serve now (None when it can), for every readiness probe.

        The trace database must answer (a prediction's row could not be written otherwise),
        and the default model must be readable (every request that names none would fail).
        """
        if not await self.is_ready():
            return "the trace database is not reachable"
        return self.registry.default_problem()

    async def is_ready(self) -> bool:
        """True when a prediction's trace can be recorded: the database answers in time.

        One probe at a time: against a frozen database each probe's thread stays blocked, and
        a probe per call would fill the thread pool that model loads and decodes need.
        """
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(self.writer.database_reachable))
        try:
            return await asyncio.wait_for(asyncio.shield(self._probe), _READY_TIMEOUT_SECONDS)
        except TimeoutError:
            return False

    async def predict(self, request: PredictRequest) -> PredictResult:
        """Answer ``request``, or raise the ``ServingError`` its trace row records."""
        requested = request.model if request.model is not None else self.registry.default
        call = _Call(
            trace_id=new_id(),
            request=request,
            requested=(requested or "").strip()[:_MAX_REF_CHARS],
            received_at=utc_now(),
            started=time.perf_counter(),
        )
        try:
            call.entry = entry = self.registry.resolve(request.model)
            codec = codec_for(entry.manifest.input)
            payload = await request.source.decode(
                codec, entry.manifest.input, self.limits, call.record
            )
            async with self.registry.serving(entry) as serving:
                predictions = await self._predict_with_fallback(serving, codec, payload)
                manifest, reason = serving.manifest, serving.fallback_reason
        except Exception as error:
            refusal = await self._refuse(call, error)
        else:
            return await self._answer(call, payload, manifest, reason, predictions)
        # Raised outside the handler, never as its own cause, and not kept in this frame: an
        # error that refers to itself, or a frame of its traceback that refers to it, is a
        # reference cycle, and each refused body (up to MAX_BODY_BYTES) stayed alive until the
        # cyclic collector ran, which a server process seldom does.
        try:
            raise refusal
        finally:
            del refusal

    async def _predict_with_fallback(
        self, serving: Serving, codec: InputCodec, payload: Payload
    ) -> list[Prediction]:
        while True:
            runtime = serving.runtime
            assert runtime is not None
            instances = codec.validate(runtime, payload)
            try:
                return await _run(runtime, instances)
            except InvalidInputError:
                raise
            except Exception as error:  # noqa: BLE001 - any model failure: the fallback
                logger.exception("Model %s failed on request", runtime.manifest.ref)
                await serving.fall_back(f"{runtime.manifest.ref} failed: {describe_error(error)}")

    async def _answer(
        self,
        call: _Call,
        payload: Payload,
        manifest: ModelManifest,
        fallback_reason: str | None,
        predictions: list[Prediction],
    ) -> PredictResult:
        outputs = [{"label": p.label, "probabilities": p.probabilities} for p in predictions]
        row = call.row(
            payload.kind,
            payload.record,
            Outcome.OK,
            rows=len(predictions),
            model_name=manifest.name,
            model_version=manifest.version,
            is_fallback=fallback_reason is not None,
            fallback_reason=fallback_reason,
            output=outputs,
            label=None if payload.is_batch else predictions[0].label,
        )
        try:
            await self._committed(row)
        except TraceWriteError as error:
            TRACE_WRITE_FAILURES.inc()
            logger.error(
                "Request %s predicted but not recorded: %s", call.request.request_id, error
            )
            self.meter.refused(manifest.name, manifest.version, Outcome.UNAVAILABLE)
            raise as_serving_error(error) from error
        # The histogram's time includes the commit, which the answer waited for.
        self.meter.answered(
            manifest.name, manifest.version, len(predictions), call.elapsed_ms() / 1000
        )
        return PredictResult(
            request_id=call.request.request_id,
            requested=call.requested,
            manifest=manifest,
            fallback_reason=fallback_reason,
            predictions=predictions,
            outputs=outputs,
            is_batch=payload.is_batch,
            latency_ms=row.latency_ms or 0.0,
            extras=payload.extras,
        )

    async def _refuse(self, call: _Call, error: Exception) -> ServingError:
        """A request that got no prediction: traced in one row, then raised (a 503 if the row
        cannot be written)."""
        serving_error = as_serving_error(error)
        # The model the request was addressed to, so refusals can be counted per model.
        manifest = call.entry.manifest if call.entry else None
        row = call.row(
            manifest.input.kind if manifest else "unknown",
            capped_input(call.record.value),
            serving_error.outcome,
            model_name=manifest.name if manifest else None,
            model_version=manifest.version if manifest else None,
            error=serving_error.message[:_MAX_ERROR_CHARS],
        )
        try:
            await self._committed(row)
        except TraceWriteError as write_error:
            TRACE_WRITE_FAILURES.inc()
            # Its refusal would be an answer without a row: the client gets the 503 instead,
            # and its retry, once the database is back, the refusal with its row.
            logger.error(
                "Request %s refused and its trace could not be written", call.request.request_id
            )
            serving_error = as_serving_error(write_error)
        self.meter.refused(
            manifest.name if manifest else "unknown",
            manifest.version if manifest else "",
            serving_error.outcome,
        )
        return serving_error

    async def _committed(self, row: TraceRow) -> None:
        """Wait for ``row``'s commit; ``TraceWriteError`` if it fails or takes too long.

        A frozen database must not hold requests for as long as it is frozen. A row that
        commits after its request gave up is in the database all the same; the request was
        answered 503, so nothing unrecorded was acknowledged.
        """
        if not self.writer.may_stall:
            # Its commit runs on this event loop, bounded by its own lock timeout: no timer
            # could fire before it, so none is paid for on every request.
            await self.writer.record(row)
            return
        try:
            async with asyncio.timeout(self.commit_timeout):
                await self.writer.record(row)
        except TimeoutError:
            raise TraceWriteError(
                f"the trace database did not commit within {self.commit_timeout:g} s"
            ) from None


async def _run(runtime: ModelRuntime, instances: list[Any]) -> list[Prediction]:
    # A microsecond-cheap model runs on the event loop, where a thread hop would cost more
    # than the prediction; a large batch goes to a thread so as not to stall other requests.
    if runtime.runs_inline and len(instances) <= _INLINE_MAX_ROWS:
        return runtime.predict(instances)
    return await asyncio.to_thread(runtime.predict, instances)


def capped_input(value: Any) -> Any:
    """A refused input as the trace keeps it: whole when small, else size, hash and prefix.

    Anonymous clients can send refused bodies up to the body limit; each must not cost a
    row of that size.
    """
    if isinstance(value, bytes):  # a body that never parsed
        text = value
    else:
        try:
            text = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            return {"unserialisable": True, "type": type(value).__name__}
        if len(text) <= _MAX_REFUSED_INPUT_BYTES:
            return value
    if len(text) <= _MAX_REFUSED_INPUT_BYTES:
        return {"raw": text.decode("utf-8", errors="replace")}
    return {
        "truncated": True,
        "size_bytes": len(text),
        "sha256": hashlib.sha256(text).hexdigest(),
        "prefix": text[:_REFUSED_PREFIX_CHARS].decode("utf-8", errors="replace"),
    }
