"""The OpenAPI schema, with the predict bodies and examples taken from the real manifests."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import v2_infer
from api.errors import V2_PREFIX
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
from serving.codecs import codec_for


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
            _document_framework_errors(schema)
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
        "content": {
            "application/json": {
                "schema": {"$ref": f"{_COMPONENTS}V2InferenceRequest"},
                "examples": _v2_examples(registry),
            }
        },
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


def _document_framework_errors(schema: dict[str, Any]) -> None:
    """The errors of FastAPI's routes that FastAPI, Starlette and our middleware answer.

    FastAPI documents a 422 on every route with parameters, with its own body
    (``HTTPValidationError``: ``loc``, ``msg``, ``type``); ``api.errors`` answers an
    ``ErrorResponse`` instead, and under ``/v2`` a 400 ``V2Error``. A route with a body also
    answers 400 (a body that cannot be parsed), 408 (a body that stops arriving) and 413 (a
    body over MAX_BODY_BYTES).
    """
    fastapi_body = {"$ref": f"{_COMPONENTS}HTTPValidationError"}
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            documented = responses.get("422", {}).get("content", {}).get("application/json", {})
            if documented.get("schema") == fastapi_body:
                del responses["422"]
                if path.startswith(V2_PREFIX):
                    responses.setdefault("400", _error("Malformed request", "V2Error"))
                else:
                    responses["422"] = _error("Invalid request: every bad field is named")
            if "requestBody" in operation and not path.startswith(V2_PREFIX):
                for status, description in _BODY_ERRORS.items():
                    responses.setdefault(status, _error(description))
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"{_COMPONENTS}{name}"' not in json.dumps(schema):
            components.pop(name, None)


_BODY_ERRORS = {
    "400": "The body cannot be parsed",
    "408": "The request body stopped arriving (BODY_READ_TIMEOUT_SECONDS)",
    "413": "Request body too large (MAX_BODY_BYTES)",
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
    "408": _error("The request body stopped arriving (BODY_READ_TIMEOUT_SECONDS)"),
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


def _v2_examples(registry: ModelRegistry | None) -> dict[str, Any]:
    """An inference request of one row a tabular model: one tensor a feature, as the model's
    ``GET /v2/models/{m}`` metadata lists them."""
    examples: dict[str, Any] = {}
    for entry in registry.entries() if registry else []:
        schema = entry.manifest.input
        if isinstance(schema, TabularInput) and schema.example:
            inputs = [
                {
                    "name": spec.name,
                    "datatype": spec.datatype,
                    "shape": [1],
                    "data": [schema.example[spec.name]],
                }
                for spec in codec_for(schema).tensor_specs(schema)
            ]
            examples[f"{entry.manifest.name}-row"] = {
                "summary": f"One row for {entry.manifest.name}",
                "value": {"id": "example-1", "inputs": inputs},
            }
    return examples


def _audio_types() -> list[str]:
    return [f"audio/{audio_format}" for audio_format in SUPPORTED_FORMATS]
