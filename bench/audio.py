"""Benchmark audio ``POST /predict`` (a 2 s FLAC clip) on both instrument models.

    python -m bench.audio [--duration 10] [--workers 2] [--starts 3]

Prints, side by side with the targets: the first answer after process start (nothing
preloaded; a new database or one already migrated; one worker and ``--workers``), the median
of ``--starts`` starts each, with the fastest and slowest (one start says little on a VM whose
file cache and CPU come and go); then for each model p50 / p99 at 1 connection and requests
per second at 8, with the server's CPU
time per request (from ``/proc``: comparable on a busy machine, where wall-clock figures are
not), and the resident memory of each server process with both models loaded. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.load import (
    require_wrk,
    resident_mb,
    run_wrk,
    seconds_to_first_answer,
    server_pids,
    wrk_script,
)
from db.migrate import upgrade_to_head
from tests.live_server import ROOT, live_api

_MODELS = ("instrument-cnn", "instrument-mfcc")
_CLIP = ROOT / "models/_evaluation/instrument-recognition/violin-n070-v080.flac"
_CONNECTIONS = (1, 8)
_TARGETS = {
    "first answer": "1.0 s",
    "p50 at 1": "4 ms",
    "req/s at 8": "250",
    "resident, both models": "250 MB",
}


def multipart(clip: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{clip.name}"\r\nContent-Type: audio/flac\r\n\r\n'
    ).encode()
    return head + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def first_answers(
    folder: Path, starts: int, workers: int, preload: str = "", *, restart: bool = False
) -> list[tuple[float, float]]:
    """``first_answer`` of ``starts`` starts, each on a database of its own."""
    return [
        first_answer(folder / f"start-{index}", workers, preload, restart=restart)
        for index in range(starts)
    ]


def first_answer(
    folder: Path, workers: int, preload: str = "", *, restart: bool = False
) -> tuple[float, float]:
    """Seconds from ``python -m api`` starting to its first instrument-cnn answer, and the CPU
    seconds its processes had spent by then.

    A new database, unless ``restart``: then one already migrated, as a restart finds it.
    """
    folder.mkdir(exist_ok=True)
    database = folder / f"cold-{workers}-{preload or 'lazy'}-{restart}.db"
    if restart:
        upgrade_to_head(f"sqlite:///{database}")
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "MODELS_DIR": str(ROOT / "models"),
        "PRELOAD_MODELS": preload,
        "WORKERS": str(workers),
    }
    clip = _CLIP.read_bytes()
    return seconds_to_first_answer(
        env,
        lambda url: httpx.post(f"{url}/predict/{_MODELS[0]}", files={"file": clip}, timeout=60),
    )


def proportional_mb(pid: int) -> float:
    """PSS: resident memory with shared pages split between the processes sharing them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _role(pid: int, supervisor: int, workers: int) -> str:
    if pid == supervisor:
        return "server" if workers == 1 else "supervisor"
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    return "multiprocessing helper" if b"resource_tracker" in command else "worker"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="WORKERS of the server")
    parser.add_argument("--starts", type=_positive, default=3, help="starts measured per condition")
    args = parser.parse_args()
    if not require_wrk():
        return 2
    workers = args.workers
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        body, content_type = multipart(_CLIP)
        script = wrk_script(folder, body, content_type)
        n = args.starts
        starts = {
            "1 worker, lazy, new database": first_answers(folder, n, 1),
            "1 worker, lazy, restart (database at head)": first_answers(folder, n, 1, restart=True),
        }
        if workers > 1:
            starts[f"{workers} workers, lazy"] = first_answers(folder, n, workers)
        starts[f"1 worker, PRELOAD_MODELS={_MODELS[0]}"] = first_answers(folder, n, 1, _MODELS[0])
        env = {
            "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
            "MODELS_DIR": str(ROOT / "models"),
            "PRELOAD_MODELS": ",".join(_MODELS),
            "WORKERS": str(workers),
        }
        rows = []
        with live_api(folder, env, timeout=120) as server:
            # Every worker up and warm: the first answers of each may still be its start-up.
            for model in _MODELS:
                for _ in range(20 * workers):
                    httpx.post(f"{server.url}/predict/{model}", files={"file": body}, timeout=60)
            pids = server_pids(server.process.pid)
            for model in _MODELS:
                for connections in _CONNECTIONS:
                    figures = run_wrk(
                        f"{server.url}/predict/{model}", connections, args.duration, script, pids
                    )
                    cpu_ms = float(figures["cpu_us"]) / 1000
                    rows.append(
                        f"| {model} | {connections} | {figures['rps']} | {figures['p50']} | "
                        f"{figures['p99']} | {cpu_ms:.2f} ms | {figures['errors']} |"
                    )
            time.sleep(0.5)
            pids = server_pids(server.process.pid)
            roles = {pid: _role(pid, pids[0], workers) for pid in pids}
            resident = [(pid, resident_mb(pid), proportional_mb(pid)) for pid in pids]
    load = os.getloadavg()
    print(f"WORKERS={workers}, {_CLIP.name} (2 s FLAC), traced to SQLite, {os.cpu_count()} cores,")
    print(f"load average {load[0]:.2f} / {load[1]:.2f} at the end\n")
    print(
        f"| first answer after process start ({args.starts} starts) | wall clock, median "
        "(fastest to slowest) | server CPU, median | target |"
    )
    print("|---|---|---|---|")
    for name, measured in starts.items():
        seconds = sorted(wall for wall, _ in measured)
        cpu = statistics.median(cpu for _, cpu in measured)
        print(
            f"| {name} | {statistics.median(seconds):.2f} s ({seconds[0]:.2f} to "
            f"{seconds[-1]:.2f}) | {cpu:.2f} s | {_TARGETS['first answer']} |"
        )
    print(
        "\n| model | connections | requests/s | p50 | p99 | server CPU per request | errors |"
        "\n|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))
    print(
        f"\ntargets: p50 < {_TARGETS['p50 at 1']} at 1 connection, "
        f"≥ {_TARGETS['req/s at 8']} requests/s at 8\n"
    )
    print("| process (both models loaded) | resident | proportional (PSS) |\n|---|---|---|")
    for pid, rss, pss in resident:
        print(f"| {roles[pid]} (pid {pid}) | {rss:.0f} MB | {pss:.0f} MB |")
    total_rss = sum(rss for _, rss, _ in resident)
    total_pss = sum(pss for _, _, pss in resident)
    print(
        f"| all {len(resident)} | {total_rss:.0f} MB | {total_pss:.0f} MB |\n\n"
        f"target: under {_TARGETS['resident, both models']} resident with both models loaded"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
