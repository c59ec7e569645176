"""The OpenAPI schema, with the predict bodies and examples taken from the real manifests."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import v2_infer
from api.schemas import (
    ErrorResponse,
    PredictionResponse,
    PredictRequest,
    V2Error,
    V2InferenceRequest,
    V2InferenceResponse,
)
from ml.audio import SUPPORTED_FORMATS
from ml.manifest import TabularInput
from registry.registry import ModelRegistry


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that documents the predict routes from the registry."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            registry: ModelRegistry | None = getattr(app.state, "registry", None)
            _document_fast_routes(schema, registry)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_fast_routes(schema: dict[str, Any], registry: ModelRegistry | None) -> None:
    """Path items of the predict routes, which FastAPI's router does not serve."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (
        PredictRequest,
        PredictionResponse,
        ErrorResponse,
        V2InferenceRequest,
        V2InferenceResponse,
        V2Error,
    ):
        model_schema = model.model_json_schema(ref_template=f"{_COMPONENTS}{{model}}")
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema
    paths = schema.setdefault("paths", {})
    native_body = _native_body(registry)
    paths["/predict"] = {
        "post": _operation(
            "Predict with the default model",
            _NATIVE_DESCRIPTION,
            native_body,
            _NATIVE_RESPONSES,
            [],
            "predict",
        )
    }
    paths["/predict/{model_ref}"] = {
        "post": _operation(
            "Predict with a named model (name or name@version)",
            _NATIVE_DESCRIPTION,
            native_body,
            _NATIVE_RESPONSES,
            [_path_parameter("model_ref")],
            "predict",
        )
    }
    v2_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}V2InferenceRequest"}}},
    }
    for path in v2_infer.INFER_PATHS:
        names = re.findall(r"\{(\w+)\}", path)
        paths[path] = {
            "post": _operation(
                "Inference (Open Inference Protocol V2)",
                _V2_DESCRIPTION,
                v2_body,
                _V2_RESPONSES,
                [_path_parameter(name) for name in names],
                "open inference protocol",
            )
        }


_COMPONENTS = "#/components/schemas/"
_NATIVE_DESCRIPTION = (
    'Tabular models: JSON `{"features": {...}}` or `{"instances": [...]}`; audio models: '
    "a multipart `file` upload. The model is the default one, or `name` (latest version) "
    "or `name@version`. Every request is traced."
)
_V2_DESCRIPTION = (
    "One input tensor per feature, named as the feature (BYTES categories, INT64 integers, "
    "FP64 numbers; shape [N] or [N, 1]), or one BYTES input with an audio file. JSON "
    "tensors or the binary tensor data extension (`Inference-Header-Content-Length`). "
    "Traced and metered as `/predict` is."
)


def _error(description: str, model: str = "ErrorResponse") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}{model}"}}},
    }


_NATIVE_RESPONSES = {
    "200": _error("The prediction", "PredictionResponse"),
    "404": _error("Unknown model"),
    "413": _error("Body, file or batch too large"),
    "415": _error("JSON sent to an audio model or the reverse"),
    "422": _error("Invalid input: every bad field is named"),
    "503": _error("Neither the model nor a fallback can serve, or the trace cannot be written"),
}
_V2_RESPONSES = {
    "200": _error("The outputs (binary when asked for)", "V2InferenceResponse"),
    "400": _error("Malformed request or input that does not fit the model", "V2Error"),
    "404": _error("Unknown model or version", "V2Error"),
    "503": _error("Neither the model nor a fallback can serve", "V2Error"),
}


def _operation(
    summary: str,
    description: str,
    body: dict[str, Any],
    responses: dict[str, Any],
    parameters: list[dict[str, Any]],
    tag: str,
) -> dict[str, Any]:
    return {
        "tags": [tag],
        "summary": summary,
        "description": description,
        "parameters": parameters,
        "requestBody": body,
        "responses": responses,
        "operationId": re.sub(r"\W+", "_", f"{summary}_{len(parameters)}").lower(),
    }


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _native_body(registry: ModelRegistry | None) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": f"{_COMPONENTS}PredictRequest"},
                "examples": _tabular_examples(registry),
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                },
                "encoding": {"file": {"contentType": ", ".join(_audio_types())}},
            },
        },
    }


def _tabular_examples(registry: ModelRegistry | None) -> dict[str, Any]:
    examples: dict[str, Any] = {}
    for entry in registry.entries() if registry else []:
        schema = entry.manifest.input
        if isinstance(schema, TabularInput) and schema.example:
            ref = entry.manifest.ref
            examples[f"{entry.manifest.name}-row"] = {
                "summary": f"One row for {ref}",
                "value": {"features": schema.example},
            }
            examples[f"{entry.manifest.name}-batch"] = {
                "summary": f"A batch of two rows for {ref}",
                "value": {"instances": [schema.example, schema.example]},
            }
    return examples


def _audio_types() -> list[str]:
    return [f"audio/{audio_format}" for audio_format in SUPPORTED_FORMATS]
