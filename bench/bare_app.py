"""The reference of the tabular benchmark: what a user writes by hand to serve the same model.

A bare FastAPI app that loads the attrition logistic-regression pipeline, takes its arithmetic
out once (scaler means and scales, coefficients, one-hot categories) and computes each answer
in numpy. No validation beyond what the arithmetic needs, no trace, no metrics: the fastest
plain FastAPI service of this model, run on uvicorn with uvloop and httptools.

    python -m bench.bare_app --port 8100 [--model models/attrition-logreg/1/model.joblib]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response

_DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models/attrition-logreg/1/model.joblib"


class LogisticArithmetic:
    """The fitted pipeline's numbers: standardise, one-hot, dot product, logistic."""

    def __init__(self, pipeline: Any) -> None:
        preprocess, classifier = (step for _, step in pipeline.steps)
        coef = classifier.coef_[0]
        self.classes = [str(label) for label in classifier.classes_]
        self.intercept = float(classifier.intercept_[0])
        self.numeric: list[str] = []
        self.categorical: list[tuple[str, dict[str, int]]] = []
        numeric_blocks = []
        for name, transformer, columns in preprocess.transformers_:
            block = preprocess.output_indices_[name]
            if block.stop == block.start:
                continue
            if hasattr(transformer, "mean_"):
                self.numeric.extend(columns)
                numeric_blocks.append((transformer, coef[block]))
            else:
                offset = block.start
                for column, categories in zip(columns, transformer.categories_, strict=True):
                    self.categorical.append(
                        (column, {str(c): offset + i for i, c in enumerate(categories)})
                    )
                    offset += len(categories)
        self.mean = np.concatenate([scaler.mean_ for scaler, _ in numeric_blocks])
        self.scale = np.concatenate([scaler.scale_ for scaler, _ in numeric_blocks])
        self.numeric_coef = np.concatenate([weights for _, weights in numeric_blocks])
        self.coef = coef

    def predict(self, row: dict[str, Any]) -> dict[str, Any]:
        values = np.array([row[name] for name in self.numeric], dtype=np.float64)
        z = self.intercept + float(((values - self.mean) / self.scale) @ self.numeric_coef)
        for name, index in self.categorical:
            position = index.get(row[name])
            if position is not None:
                z += float(self.coef[position])
        positive = float(1.0 / (1.0 + np.exp(-z)))
        probabilities = {self.classes[0]: 1.0 - positive, self.classes[1]: positive}
        label = self.classes[1] if positive >= 0.5 else self.classes[0]
        return {"label": label, "probabilities": probabilities}


def create_bare_app(model_path: Path = _DEFAULT_MODEL) -> FastAPI:
    model = LogisticArithmetic(joblib.load(model_path))
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return Response(
            orjson.dumps(model.predict(body["features"])), media_type="application/json"
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", type=Path, default=_DEFAULT_MODEL)
    args = parser.parse_args()
    uvicorn.run(
        create_bare_app(args.model),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
