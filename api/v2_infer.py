"""The Open Inference Protocol V2 transport: ``POST /v2/models/{m}[/versions/{v}]/infer``.

JSON tensors and the binary tensor data extension in, the same out. A tabular model takes
one tensor per feature and answers ``label`` (BYTES, [N]) and ``probabilities`` (FP64,
[N, C], classes in the manifest's label order); an audio model takes one BYTES tensor with
the file. The predict path is the data plane's, traced and metered as ``/predict`` is.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from api.asgi import send_bytes, text_header
from api.errors import V2_PREFIX, as_api_error
from api.fast_routes import FastRoute, send_error
from api.wire import inflate, read_body
from ml.manifest import InputSchema
from serving.codecs import InputCodec
from serving.dataplane import DataPlane, PredictResult
from serving.errors import InvalidRequest, ServingError
from serving.payload import InputRecord, Limits, Payload, PredictRequest
from serving.v2_codec import (
    InferenceRequest,
    Tensor,
    V2RequestError,
    decode_infer_request,
    encode_infer_response,
    parse_header_length,
)

LABEL_OUTPUT, PROBABILITIES_OUTPUT = "label", "probabilities"
OUTPUT_NAMES = (LABEL_OUTPUT, PROBABILITIES_OUTPUT)
INFER_PATHS = (
    f"{V2_PREFIX}/models/{{model_name}}/infer",
    f"{V2_PREFIX}/models/{{model_name}}/versions/{{model_version}}/infer",
)
_HEADER_LENGTH = b"inference-header-content-length"


class TensorInput:
    """An OIP request body, decoded into tensors once the model is known."""

    __slots__ = ("_max_bytes", "_receive", "_scope", "request")

    def __init__(self, scope: Scope, receive: Receive, max_bytes: int) -> None:
        self._scope, self._receive, self._max_bytes = scope, receive, max_bytes
        self.request: InferenceRequest | None = None
        """The decoded request (id, requested outputs), once ``decode`` has run."""

    async def decode(
        self, codec: InputCodec, schema: InputSchema, limits: Limits, record: InputRecord
    ) -> Payload:
        body = inflate(
            await read_body(self._receive),
            text_header(self._scope, b"content-encoding"),
            self._max_bytes,
        )
        try:
            self.request = decode_infer_request(
                body,
                parse_header_length(text_header(self._scope, _HEADER_LENGTH)),
                codec.tensor_bounds(schema, limits),
            )
        except V2RequestError as error:
            record.value = {"size_bytes": len(body)}
            raise InvalidRequest(str(error)) from error
        unknown = [o.name for o in self.request.outputs if o.name not in OUTPUT_NAMES]
        if unknown:
            raise InvalidRequest(
                f"unknown output {unknown[0]!r}: this model's outputs are {', '.join(OUTPUT_NAMES)}"
            )
        return await codec.from_tensors(self.request.inputs, schema, limits, record)


async def infer_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    app = scope["app"]
    data_plane: DataPlane = app.state.data_plane
    params = scope["path_params"]
    version = params.get("model_version")
    source = TensorInput(scope, receive, app.state.settings.max_body_bytes)
    request = PredictRequest(
        model=f"{params['model_name']}@{version}" if version else params["model_name"],
        source=source,
        request_id=scope["state"]["request_id"],
        protocol="v2",
    )
    try:
        result = await data_plane.predict(request)
    except ServingError as error:
        await send_error(scope, send, as_api_error(error))
        return
    assert source.request is not None
    body, header_length = encode_infer_response(
        model_name=result.manifest.name,
        model_version=result.manifest.version,
        request_id=source.request.id,
        outputs=output_tensors(result),
        request=source.request,
    )
    if header_length is None:
        await send_bytes(send, 200, body)
        return
    await send_bytes(
        send,
        200,
        body,
        b"application/octet-stream",
        {_HEADER_LENGTH.decode(): str(header_length)},
    )


def output_tensors(result: PredictResult) -> list[Tensor]:
    """``label`` [N] and ``probabilities`` [N, C], classes in the manifest's label order."""
    labels = result.manifest.output.labels
    predictions = result.predictions
    probabilities = [p.probabilities[label] for p in predictions for label in labels]
    return [
        Tensor(LABEL_OUTPUT, "BYTES", (len(predictions),), [p.label for p in predictions]),
        Tensor(PROBABILITIES_OUTPUT, "FP64", (len(predictions), len(labels)), probabilities),
    ]


ROUTES = [FastRoute.post(path, infer_endpoint) for path in INFER_PATHS]
