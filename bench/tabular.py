"""Benchmark ``POST /predict`` for one attrition row, every prediction traced and metered.

    python -m bench.tabular [--duration 10] [--postgres URL]

Starts the API as a real process (one worker, the bundled models) for each trace database,
drives it with wrk on loopback, and prints requests per second and p50 / p99 latency at 1
and 32 connections, the time from process start to the first answer, and the resident memory
with both attrition models loaded. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench.load import require_wrk, resident_mb, run_wrk, seconds_to_first_answer, wrk_script
from tests.live_server import ROOT, live_api

_MANIFEST = ROOT / "models/attrition-logreg/1/manifest.json"
_ROW = json.loads(_MANIFEST.read_text())["input"]["example"]
_CONNECTIONS = (1, 32)


def bench_database(label: str, database_url: str, seconds: int, script: Path) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        env = {"DATABASE_URL": database_url, "MODELS_DIR": str(ROOT / "models"), "ENV": "dev"}
        with live_api(Path(workdir), env) as server:
            httpx.post(f"{server.url}/predict", json={"features": _ROW}).raise_for_status()
            for connections in _CONNECTIONS:
                figures = run_wrk(f"{server.url}/predict", connections, seconds, script)
                rows.append(f"| {label} | {connections} | {figures['rps']} | {figures['p50']} | "
                            f"{figures['p99']} | {figures['errors']} |")
            httpx.post(f"{server.url}/predict/attrition-gbm", json={"features": _ROW})
            rows.append(f"| {label} | memory with both attrition models loaded: "
                        f"{resident_mb(server.process.pid):.0f} MB RSS | | | | |")
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
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    if not require_wrk():
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        script = wrk_script(folder, json.dumps({"features": _ROW}).encode(), "application/json")
        cold = seconds_to_first_answer(
            {"DATABASE_URL": f"sqlite:///{folder / 'cold.db'}", "MODELS_DIR": str(ROOT / "models")},
            lambda url: httpx.post(f"{url}/predict", json={"features": _ROW}),
        )
        rows = bench_database("SQLite", f"sqlite:///{folder / 'bench.db'}", args.duration, script)
        if postgres_reachable(args.postgres):
            rows += bench_database("PostgreSQL", args.postgres, args.duration, script)
        else:
            rows.append("| PostgreSQL | not reachable: skipped | | | | |")
    print(f"process start to first answer (lazy load included): {cold:.2f} s\n")
    print("| trace database | connections | requests/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
