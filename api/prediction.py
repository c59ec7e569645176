"""Serving one prediction request: resolve, read, trace, validate, predict, fall back.

Order matters for the audit trail: the input is queued for the trace before any model
runs, the result after, and the answer leaves only once the commit holding its row is done.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api import metrics
from api.errors import ApiError, as_api_error
from api.payloads import Payload, ReceivedInput, read_payload
from api.settings import Settings
from db.tables import Outcome, utc_now
from db.traces import TraceEnd, TraceStart, TraceWriteError, TraceWriter
from ml.errors import InvalidInputError, describe_error
from ml.runtime import ModelRuntime, Prediction
from registry.registry import ModelEntry, ModelRegistry, ServedModel

logger = logging.getLogger(__name__)

_OUTCOME_BY_STATUS = {404: Outcome.NOT_FOUND, 503: Outcome.UNAVAILABLE}
_MAX_REF_CHARS = 128
_INLINE_MAX_ROWS = 16


@dataclass(slots=True)
class _Request:
    """One prediction request in flight: what it asked for and when."""

    trace_id: str
    request_id: str
    requested: str
    received_at: datetime
    started: float
    entry: ModelEntry | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


class PredictionService:
    """Everything ``POST /predict`` does between the HTTP request and the response."""

    def __init__(self, registry: ModelRegistry, writer: TraceWriter, settings: Settings) -> None:
        self.registry, self.writer, self.settings = registry, writer, settings

    async def predict(self, request: Request, model_ref: str | None) -> Response:
        call = _Request(
            trace_id=uuid.uuid4().hex,
            request_id=request.state.request_id,
            requested=(model_ref or self.registry.default or "").strip()[:_MAX_REF_CHARS],
            received_at=utc_now(),
            started=time.perf_counter(),
        )
        received = ReceivedInput()
        try:
            call.entry = self.registry.entry(model_ref)
            payload = await read_payload(
                request,
                call.entry.manifest.input,
                received,
                max_rows=self.settings.max_batch_rows,
                max_audio_seconds=self.settings.max_audio_seconds,
            )
        except Exception as error:
            raise await self._reject(call, received, error) from error
        self.writer.record_start(
            TraceStart(
                call.trace_id,
                call.request_id,
                call.received_at,
                call.requested,
                payload.kind,
                payload.record,
                rows=len(payload.instances),
            )
        )
        try:
            served, predictions = await self._predict_with_fallback(call.entry, payload)
        except Exception as error:
            raise await self._fail(call, error) from error
        return await self._answer(call, payload, served, predictions)

    # --- the model's part ----------------------------------------------------------

    async def _predict_with_fallback(
        self, entry: ModelEntry, payload: Payload
    ) -> tuple[ServedModel, list[Prediction]]:
        served = await self.registry.acquire(entry)
        tried: set[str] = set()
        try:
            while True:
                instances = self._validated(served.runtime, payload)
                try:
                    return served, await _run(served.runtime, instances)
                except InvalidInputError:
                    raise
                except Exception as error:  # noqa: BLE001 - any model failure: the fallback
                    failed = served
                    reason = f"{failed.manifest.ref} failed: {describe_error(error)}"
                    logger.exception("Model %s failed on request", failed.manifest.ref)
                    served = await self.registry.fallback_after_failure(failed, reason, tried)
                    self.registry.release(failed)
        finally:
            self.registry.release(served)

    def _validated(self, runtime: ModelRuntime, payload: Payload) -> list[Any]:
        schema = runtime.manifest.input
        if payload.kind != schema.kind:
            raise InvalidInputError(
                {"body": f"{runtime.manifest.ref} takes {schema.kind} input, not {payload.kind}"}
            )
        validator = runtime.tabular_validator
        if validator is None:
            return payload.instances
        return validator.validate(payload.instances, "instances" if payload.is_batch else "")

    # --- trace, metrics, response --------------------------------------------------

    async def _answer(
        self, call: _Request, payload: Payload, served: ServedModel, predictions: list[Prediction]
    ) -> Response:
        manifest = served.manifest
        outputs = [{"label": p.label, "probabilities": p.probabilities} for p in predictions]
        latency_ms = call.elapsed_ms()
        await self.writer.record_end(
            TraceEnd(
                call.trace_id,
                utc_now(),
                Outcome.OK,
                model_name=manifest.name,
                model_version=manifest.version,
                is_fallback=served.is_fallback,
                fallback_reason=served.fallback_reason,
                output=outputs,
                label=None if payload.is_batch else predictions[0].label,
                latency_ms=latency_ms,
            )
        )
        self._count(manifest.name, manifest.version, Outcome.OK, call, rows=len(predictions))
        body: dict[str, Any] = {
            "request_id": call.request_id,
            "model": manifest.name,
            "version": manifest.version,
            "requested_model": call.requested,
            "fallback": served.is_fallback,
            "fallback_reason": served.fallback_reason,
        }
        if payload.is_batch:
            body.update(count=len(outputs), predictions=outputs)
        else:
            body.update(outputs[0])
        if payload.extras:
            body["input"] = payload.extras
        body["latency_ms"] = round(latency_ms, 3)
        return Response(orjson.dumps(body), media_type="application/json")

    async def _reject(self, call: _Request, received: ReceivedInput, error: Exception) -> ApiError:
        """A request refused before any model ran: traced in one row, then answered."""
        kind = call.entry.manifest.input.kind if call.entry else "unknown"
        self.writer.record_start(
            TraceStart(
                call.trace_id, call.request_id, call.received_at, call.requested, kind,
                received.value,
            )
        )
        return await self._fail(call, error)

    async def _fail(self, call: _Request, error: Exception) -> ApiError:
        api_error = as_api_error(error)
        outcome = _outcome_for(api_error)
        # The model the request was addressed to, so refusals can be counted per model.
        name, version = (
            (call.entry.manifest.name, call.entry.manifest.version) if call.entry else (None, None)
        )
        try:
            await self.writer.record_end(
                TraceEnd(
                    call.trace_id,
                    utc_now(),
                    outcome,
                    model_name=name,
                    model_version=version,
                    error=api_error.message,
                    latency_ms=call.elapsed_ms(),
                )
            )
        except TraceWriteError:
            logger.error("Request %s failed and its trace could not be written", call.request_id)
        self._count(name or "unknown", version or "", outcome, call)
        return api_error

    @staticmethod
    def _count(name: str, version: str, outcome: Outcome, call: _Request, rows: int = 0) -> None:
        metrics.PREDICTIONS.labels(name, version, outcome).inc()
        if rows:
            metrics.PREDICTED_ROWS.labels(name, version).inc(rows)
            metrics.PREDICTION_LATENCY.labels(name, version).observe(call.elapsed_ms() / 1000)


async def _run(runtime: ModelRuntime, instances: list[Any]) -> list[Prediction]:
    # A microsecond-cheap model runs on the event loop, where a thread hop would cost more
    # than the prediction; a large batch goes to a thread so as not to stall other requests.
    if runtime.runs_inline and len(instances) <= _INLINE_MAX_ROWS:
        return runtime.predict(instances)
    return await run_in_threadpool(runtime.predict, instances)


def _outcome_for(error: ApiError) -> Outcome:
    if error.status_code in _OUTCOME_BY_STATUS:
        return _OUTCOME_BY_STATUS[error.status_code]
    return Outcome.INVALID_INPUT if 400 <= error.status_code < 500 else Outcome.ERROR
