"""Benchmark ``POST /predict`` for one attrition row, every prediction traced and metered.

    python -m bench.tabular [--duration 10] [--postgres URL]

Starts the API as a real process (one worker, the bundled models) for each trace database,
drives it with wrk on loopback, and prints requests per second and p50 / p99 latency at 1
and 32 connections, the cold start to the first answer, and the resident memory with both
attrition models loaded. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.live_server import ROOT, free_port, live_api

_MANIFEST = ROOT / "models/attrition-logreg/1/manifest.json"
_ROW = json.loads(_MANIFEST.read_text())["input"]["example"]
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
"""
_LOADS = [(1, 1), (2, 32)]  # (wrk threads, connections)


def run_wrk(url: str, threads: int, connections: int, seconds: int, script: Path) -> dict[str, str]:
    completed = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         str(script), f"{url}/predict"],
        capture_output=True, text=True, check=True,
    )
    output = completed.stdout

    def find(pattern: str) -> str:
        match = re.search(pattern, output)
        return match[1] if match else "-"

    return {
        "rps": find(r"Requests/sec:\s+([\d.]+)"),
        "p50": find(r"50%\s+(\S+)"),
        "p99": find(r"99%\s+(\S+)"),
        "errors": str(_count_errors(output)),
    }


def _count_errors(wrk_output: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_output)
    socket_errors = re.search(r"Socket errors: (.*)", wrk_output)
    count = int(non_2xx[1]) if non_2xx else 0
    if socket_errors:
        count += sum(int(number) for number in re.findall(r"\d+", socket_errors[1]))
    return count


def cold_start_seconds(workdir: Path, env: dict[str, str]) -> float:
    """From process start to the first answered prediction (lazy load included)."""
    port = free_port()
    environment = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={"features": _ROW})
                if reply.status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait()


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024  # type: ignore[index]


def bench_database(label: str, database_url: str, seconds: int, script: Path) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        env = {"DATABASE_URL": database_url, "MODELS_DIR": str(ROOT / "models"), "ENV": "dev"}
        with live_api(Path(workdir), env) as server:
            httpx.post(f"{server.url}/predict", json={"features": _ROW}).raise_for_status()
            for threads, connections in _LOADS:
                figures = run_wrk(server.url, threads, connections, seconds, script)
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
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "post.lua"
        script.write_text(_WRK_SCRIPT.format(body=json.dumps({"features": _ROW})))
        sqlite_url = f"sqlite:///{Path(scratch) / 'bench.db'}"
        cold = cold_start_seconds(Path(scratch), {"DATABASE_URL": f"sqlite:///{scratch}/cold.db",
                                                  "MODELS_DIR": str(ROOT / "models")})
        rows = bench_database("SQLite", sqlite_url, args.duration, script)
        if postgres_reachable(args.postgres):
            rows += bench_database("PostgreSQL", args.postgres, args.duration, script)
        else:
            rows.append("| PostgreSQL | not reachable: skipped | | | | |")
    print(f"cold start to first answer: {cold:.2f} s\n")
    print("| trace database | connections | requests/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
