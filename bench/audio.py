"""Benchmark an audio ``POST /predict`` (a 2 s clip) on the instrument CNN.

    python -m bench.audio [--duration 10]

Prints p50 / p99 at 1 connection, requests per second at 8, and the first answer after
process start, lazily loaded and with ``PRELOAD_MODELS``. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from bench.load import require_wrk, run_wrk, seconds_to_first_answer, wrk_script
from tests.live_server import ROOT, live_api

_MODEL = "instrument-cnn"
_CLIP = ROOT / "models/_evaluation/instrument-recognition/violin-n070-v080.flac"
_CONNECTIONS = (1, 8)


def multipart(clip: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{clip.name}"\r\nContent-Type: audio/flac\r\n\r\n'
    ).encode()
    return head + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def first_answer(folder: Path, preload: bool) -> float:
    env = {
        "DATABASE_URL": f"sqlite:///{folder / f'cold-{preload}.db'}",
        "MODELS_DIR": str(ROOT / "models"),
        "PRELOAD_MODELS": _MODEL if preload else "",
    }
    return seconds_to_first_answer(
        env,
        lambda url: httpx.post(
            f"{url}/predict/{_MODEL}", files={"file": _CLIP.read_bytes()}, timeout=60
        ),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    if not require_wrk():
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        body, content_type = multipart(_CLIP)
        script = wrk_script(folder, body, content_type)
        lazy, preloaded = first_answer(folder, False), first_answer(folder, True)
        env = {
            "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
            "MODELS_DIR": str(ROOT / "models"),
            "PRELOAD_MODELS": _MODEL,
        }
        rows = []
        with live_api(folder, env, timeout=120) as server:
            for connections in _CONNECTIONS:
                figures = run_wrk(
                    f"{server.url}/predict/{_MODEL}", connections, args.duration, script
                )
                rows.append(
                    f"| {connections} | {figures['rps']} | {figures['p50']} | "
                    f"{figures['p99']} | {figures['errors']} |"
                )
    print(
        f"first answer after process start: {lazy:.2f} s lazy, {preloaded:.2f} s with "
        f"PRELOAD_MODELS={_MODEL}\n"
    )
    print(f"{_MODEL}, {_CLIP.name} (2 s FLAC), traced to SQLite\n")
    print("| connections | requests/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
