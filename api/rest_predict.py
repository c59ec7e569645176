"""The native REST transport: ``POST /predict`` and ``POST /predict/{model_ref}``.

Decode the body (JSON or a multipart upload), call the data plane, encode its answer or
its error. No other step of the predict path lives here.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from api.asgi import send_bytes, text_header
from api.errors import as_api_error
from api.fast_routes import FastRoute, send_error
from api.wire import media_type_of, read_native_body
from ml.manifest import InputSchema
from serving.codecs import InputCodec
from serving.dataplane import DataPlane, PredictResult
from serving.errors import ServingError
from serving.payload import InputRecord, Limits, Payload, PredictRequest

PREDICT_PATHS = ("/predict", "/predict/{model_ref}")


class NativeInput:
    """The body of a native request, read once the model's input kind is known."""

    __slots__ = ("_receive", "_scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._scope, self._receive = scope, receive

    async def decode(
        self, codec: InputCodec, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        media_type = media_type_of(text_header(self._scope, b"content-type"))
        body = await read_native_body(self._scope, self._receive, media_type)
        return await codec.from_body(body, schema, limits, record)


async def predict_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    data_plane: DataPlane = scope["app"].state.data_plane
    request_id: str = scope["state"]["request_id"]
    request = PredictRequest(
        model=scope["path_params"].get("model_ref"),
        source=NativeInput(scope, receive),
        request_id=request_id,
    )
    try:
        result = await data_plane.predict(request)
    except ServingError as error:
        await send_error(scope, send, as_api_error(error))
        return
    await send_bytes(send, 200, orjson.dumps(prediction_body(result)))


def prediction_body(result: PredictResult) -> dict[str, Any]:
    """The JSON answer: who served, the label and probabilities (or a batch of them)."""
    body: dict[str, Any] = {
        "request_id": result.request_id,
        "model": result.manifest.name,
        "version": result.manifest.version,
        "requested_model": result.requested,
        "fallback": result.is_fallback,
        "fallback_reason": result.fallback_reason,
    }
    if result.is_batch:
        body.update(count=len(result.outputs), predictions=result.outputs)
    else:
        body.update(result.outputs[0])
    if result.extras:
        body["input"] = result.extras
    body["latency_ms"] = round(result.latency_ms, 3)
    return body


ROUTES = [FastRoute.post(path, predict_endpoint) for path in PREDICT_PATHS]
