"""Helpers shared by the tests: committed models, tokens, metric samples."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from db.queries import get_prediction
from db.tables import Prediction
from ml.manifest import ModelManifest, TabularInput, read_manifest, sha256_file
from tests.factories import rewrite_manifest

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"
HELDOUT_CSV = MODELS_DIR / "_evaluation" / "employee-attrition" / "heldout.csv"
ATTRITION_MODELS = ("attrition-logreg", "attrition-gbm")
ADMIN = {"username": "admin", "password": "admin-password-123"}
VIEWER = {"username": "vera", "password": "viewer-pass-1"}
"""The viewer that the ``viewer_headers`` fixture creates."""
V2_DATATYPE = {"category": "BYTES", "integer": "INT64", "number": "FP64"}
"""The Open Inference Protocol V2 datatype of each tabular feature type."""


def attrition_manifest() -> ModelManifest:
    """The manifest of the committed default model, attrition-logreg@1."""
    return read_manifest(MODELS_DIR / "attrition-logreg/1/manifest.json")


def attrition_schema() -> TabularInput:
    """The input schema of the committed default model."""
    schema = attrition_manifest().input
    assert isinstance(schema, TabularInput)
    return schema


def attrition_example() -> dict[str, Any]:
    """The example row of the committed default model's manifest (a real held-out row)."""
    return dict(attrition_schema().example)


def heldout_rows() -> list[dict[str, Any]]:
    """The committed held-out set's feature rows, typed as the manifest says (no target)."""
    cast = {"category": str, "integer": int, "number": float}
    features = attrition_schema().features
    with HELDOUT_CSV.open(newline="") as handle:
        return [
            {f.name: cast[f.type](row[f.name]) for f in features} for row in csv.DictReader(handle)
        ]


def v2_body(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A V2 inference request (JSON) of ``rows`` for the default model: a tensor a feature.

    ``extra``: other fields of the request, such as ``id`` or ``parameters``.
    """
    inputs = [
        {
            "name": f.name,
            "datatype": V2_DATATYPE[f.type],
            "shape": [len(rows)],
            "data": [row[f.name] for row in rows],
        }
        for f in attrition_schema().features
    ]
    return {"inputs": inputs, **extra}


def run_python(program: str, *args: str, timeout: float = 120) -> Any:
    """Run ``program`` in a fresh interpreter at the repository root; its last line, as JSON.

    For tests of what importing something imports: nothing else has filled its sys.modules.
    """
    completed = subprocess.run(
        [sys.executable, "-c", program, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def copy_model(
    store: Path,
    name: str,
    version: str = "1",
    *,
    as_name: str | None = None,
    as_version: str | None = None,
) -> Path:
    """Copy a committed model into ``store``, optionally renamed, manifest kept consistent."""
    target = store / (as_name or name) / (as_version or version)
    shutil.copytree(MODELS_DIR / name / version, target)
    if (as_name or name, as_version or version) != (name, version):
        rewrite_manifest(target, name=as_name or name, version=as_version or version)
    return target


class ExplodesOnAge99:
    """A stand-in estimator that fails at prediction time on one kind of row (not on warm-up)."""

    classes_ = np.array(["No", "Yes"])

    def predict_proba(self, frame: Any) -> np.ndarray:
        if (frame["Age"] == 99).any():
            raise FloatingPointError("numerical blow-up")
        return np.tile([0.5, 0.5], (len(frame), 1))


def install_exploding_model(store: Path, name: str = "attrition-fragile") -> Path:
    """Add ``name`` to ``store``: attrition-logreg's copy whose estimator is ``ExplodesOnAge99``.

    A pipeline with no compiled form, so the exploding estimator is what serves it. Returns
    its folder.
    """
    model_dir = copy_model(store, "attrition-logreg", as_name=name)
    joblib.dump(ExplodesOnAge99(), model_dir / "model.joblib")
    # Serve the (exploding) pipeline, not logreg's compiled form.
    rewrite_manifest(model_dir, sha256=sha256_file(model_dir / "model.joblib"), compiled=None)
    return model_dir


class FakeClock:
    """A monotonic clock the test moves by hand, so that no test sleeps out a window."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bearer(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def metric_value(name: str, **labels: str) -> float:
    """A sample of this process's Prometheus registry (0 when it was never recorded)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def stored_trace(engine: Engine, request_id: str) -> Prediction:
    """The trace row of the request answered with ``request_id``; fails when there is none."""
    with Session(engine) as session:
        row = get_prediction(session, request_id)
    assert row is not None, f"no trace row for request {request_id}"
    return row


def trace_rows(engine: Engine, request_id: str) -> list[Prediction]:
    """Every trace row stored for ``request_id``, oldest first (an id may be reused)."""
    query = (
        select(Prediction)
        .where(col(Prediction.request_id) == request_id)
        .order_by(col(Prediction.received_at), col(Prediction.id))
    )
    with Session(engine) as session:
        return list(session.exec(query).all())


def only_trace(engine: Engine, request_id: str) -> Prediction:
    """The one trace row of ``request_id``: a request is written once, whole."""
    rows = trace_rows(engine, request_id)
    assert len(rows) == 1, f"{len(rows)} trace rows for request {request_id}"
    return rows[0]


def trace_of(client: TestClient, request_id: str) -> Prediction:
    """``stored_trace`` in the database of a TestClient's app."""
    return stored_trace(client.app.state.engine, request_id)  # type: ignore[attr-defined]


def varied_signals(harmonic_seconds: float) -> list[tuple[str, np.ndarray, int]]:
    """Signals unlike the committed clips, for comparing two feature stacks: a decaying
    harmonic tone at 44.1 kHz, noise at 16 kHz, and silence at 22.05 kHz; as (name, samples,
    sample rate)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(harmonic_seconds * 44_100)) / 44_100
    harmonic = sum(np.sin(2 * np.pi * 196.0 * k * t) / k for k in range(1, 10)) * np.exp(-t)
    return [
        (
            f"harmonic 44.1 kHz, {harmonic_seconds:g} s",
            (0.3 * harmonic).astype(np.float32),
            44_100,
        ),
        ("noise 16 kHz, 1 s", (0.1 * rng.standard_normal(16_000)).astype(np.float32), 16_000),
        ("silence 22.05 kHz", np.zeros(22_050, np.float32), 22_050),
    ]
