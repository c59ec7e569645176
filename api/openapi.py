"""The OpenAPI schema, with the predict bodies and examples taken from the real manifests."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.schemas import PredictRequest
from ml.audio import SUPPORTED_FORMATS
from ml.manifest import TabularInput
from registry.registry import ModelRegistry

_PREDICT_PATHS = ("/predict", "/predict/{model_ref}")


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that documents ``/predict`` from the registry."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            registry: ModelRegistry | None = getattr(app.state, "registry", None)
            _document_predict_bodies(schema, registry)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_predict_bodies(schema: dict[str, Any], registry: ModelRegistry | None) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["PredictRequest"] = PredictRequest.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/PredictRequest"},
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
    for path in _PREDICT_PATHS:
        schema["paths"][path]["post"]["requestBody"] = body


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
