"""Benchmark one attrition row: ``/predict`` and ``/v2/.../infer`` beside a bare FastAPI app.

    python -m bench.tabular [--duration 5] [--rounds 3] [--postgres URL]

In one run, on loopback with wrk: the bare app of ``bench.bare_app`` (the same logistic
regression in numpy on uvicorn with uvloop and httptools, no trace, no metrics) and the API
(one worker, the bundled models, every prediction traced and metered) on ``/predict`` and on
the Open Inference Protocol route, in JSON and in binary (what tritonclient sends by
default), for each trace database. They take turns for ``--rounds`` rounds and each keeps its
best run. Prints requests per second, p50 and p99 at
1 and 32 connections, each route's throughput as a ratio of the bare app's, the server
process's CPU time per request (less sensitive than throughput to a busy machine), the time from
process start to the first answer, and the resident memory with both attrition models
loaded. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.http as triton
from sqlalchemy import create_engine, text

from bench.load import require_wrk, resident_mb, run_wrk, seconds_to_first_answer, wrk_script
from tests.live_server import ROOT, answers, free_port, live_api, running_process

_MODEL = "attrition-logreg"
_MANIFEST = json.loads((ROOT / f"models/{_MODEL}/1/manifest.json").read_text())
_ROW: dict[str, Any] = _MANIFEST["input"]["example"]
_CONNECTIONS = (1, 32)
_V2_DATATYPE = {"category": "BYTES", "integer": "INT64", "number": "FP64"}


def v2_body(row: dict[str, Any]) -> bytes:
    """The row as OIP JSON tensors: one input of shape [1] per feature."""
    inputs = [
        {
            "name": f["name"],
            "datatype": _V2_DATATYPE[f["type"]],
            "shape": [1],
            "data": [row[f["name"]]],
        }
        for f in _MANIFEST["input"]["features"]
    ]
    return json.dumps({"inputs": inputs}).encode()


def v2_binary_body(row: dict[str, Any]) -> tuple[bytes, int]:
    """The row as tritonclient sends it by default: every input as binary data, the body
    and the length of its JSON header."""
    inputs = []
    for feature in _MANIFEST["input"]["features"]:
        datatype = _V2_DATATYPE[feature["type"]]
        value = np.array([row[feature["name"]]], dtype=triton.triton_to_np_dtype(datatype))
        inputs.append(triton.InferInput(feature["name"], [1], datatype).set_data_from_numpy(value))
    body, header_length = triton.InferenceServerClient.generate_request_body(inputs)
    return bytes(body), header_length


@contextmanager
def bare_app(workdir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with running_process(
        [sys.executable, "-m", "bench.bare_app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        log_path=workdir / "bare.log",
        is_up=lambda: answers(f"{url}/health"),
    ) as process:
        yield url, process.pid


def interleaved(
    targets: Mapping[str, tuple[str, Path, Sequence[int]]],
    connections: int,
    seconds: int,
    rounds: int,
) -> dict[str, dict[str, str]]:
    """Each target's best of ``rounds`` wrk runs, the targets taking turns in every round.

    Taking turns, so that a machine whose speed drifts (a shared VM does) biases no target.
    """
    best: dict[str, dict[str, str]] = {}
    for _ in range(rounds):
        for label, (url, script, pids) in targets.items():
            figures = run_wrk(url, connections, seconds, script, pids)
            if label not in best or float(figures["rps"]) > float(best[label]["rps"]):
                best[label] = figures
    return best


def bench_database(
    label: str,
    database_url: str,
    seconds: int,
    rounds: int,
    scripts: dict[str, Path],
    bare: tuple[str, int],
) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        env = {"DATABASE_URL": database_url, "MODELS_DIR": str(ROOT / "models"), "ENV": "dev"}
        with live_api(Path(workdir), env) as server:
            httpx.post(f"{server.url}/predict", json={"features": _ROW}).raise_for_status()
            bare_url, bare_pid = bare
            pids = (server.process.pid,)
            targets = {
                "bare FastAPI + numpy": (f"{bare_url}/predict", scripts["native"], (bare_pid,)),
                "/predict": (f"{server.url}/predict", scripts["native"], pids),
                "/v2/models/m/infer": (
                    f"{server.url}/v2/models/{_MODEL}/infer",
                    scripts["v2"],
                    pids,
                ),
                "/v2/models/m/infer, binary": (
                    f"{server.url}/v2/models/{_MODEL}/infer",
                    scripts["v2-binary"],
                    pids,
                ),
            }
            for connections in _CONNECTIONS:
                best = interleaved(targets, connections, seconds, rounds)
                reference = float(best["bare FastAPI + numpy"]["rps"])
                for route, figures in best.items():
                    ratio = float(figures["rps"]) / reference
                    database = "none" if route.startswith("bare") else label
                    rows.append(
                        f"| {route} | {database} | {connections} | {figures['rps']} | "
                        f"{ratio:.2f}x | {figures['cpu_us']} | {figures['p50']} | "
                        f"{figures['p99']} | {figures['errors']} |"
                    )
            httpx.post(f"{server.url}/predict/attrition-gbm", json={"features": _ROW})
            rows.append(
                f"| memory, both attrition models loaded | {label} | | "
                f"{resident_mb(server.process.pid):.0f} MB RSS | | | | | |"
            )
    return rows


def postgres_reachable(url: str) -> bool:
    try:
        with create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)).connect() as c:
            c.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure: skip that variant
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs per route and connection count, taking turns; best kept",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    if not require_wrk():
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in ("native", "v2", "v2-binary"):
            (folder / name).mkdir()
        binary_body, header_length = v2_binary_body(_ROW)
        scripts = {
            "native": wrk_script(
                folder / "native", json.dumps({"features": _ROW}).encode(), "application/json"
            ),
            "v2": wrk_script(folder / "v2", v2_body(_ROW), "application/json"),
            "v2-binary": wrk_script(
                folder / "v2-binary",
                binary_body,
                "application/octet-stream",
                {"Inference-Header-Content-Length": str(header_length)},
            ),
        }
        cold, _cpu = seconds_to_first_answer(
            {"DATABASE_URL": f"sqlite:///{folder / 'cold.db'}", "MODELS_DIR": str(ROOT / "models")},
            lambda url: httpx.post(f"{url}/predict", json={"features": _ROW}),
        )
        with bare_app(folder) as bare:
            rows = bench_database(
                "SQLite",
                f"sqlite:///{folder / 'bench.db'}",
                args.duration,
                args.rounds,
                scripts,
                bare,
            )
            if postgres_reachable(args.postgres):
                rows += bench_database(
                    "PostgreSQL", args.postgres, args.duration, args.rounds, scripts, bare
                )
            else:
                rows.append("| PostgreSQL | not reachable: skipped | | | | | | | |")
    print(f"process start to first answer (lazy load included): {cold:.2f} s\n")
    print(
        "| route | trace database | connections | requests/s | vs bare | CPU us/request "
        "| p50 | p99 | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
