"""What the benchmarks share: wrk runs on loopback, process memory, time to first answer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from tests.live_server import ROOT, free_port, stop_process

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
{extra_headers}
local body_file = io.open("{body_path}", "rb")
wrk.body = body_file:read("*a")
body_file:close()
"""


def require_wrk() -> bool:
    """True when wrk is on PATH; otherwise says how to get it."""
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return False
    return True


def wrk_script(
    folder: Path, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
) -> Path:
    """A wrk script that POSTs ``body`` (written beside it, so it may be binary), with
    ``headers`` besides its content type."""
    body_path = folder / "body.bin"
    body_path.write_bytes(body)
    script = folder / "post.lua"
    extra = "\n".join(
        f'wrk.headers["{name}"] = "{value}"' for name, value in (headers or {}).items()
    )
    script.write_text(
        _WRK_SCRIPT.format(content_type=content_type, extra_headers=extra, body_path=body_path)
    )
    return script


def run_wrk(
    url: str, connections: int, seconds: int, script: Path, server_pids: Sequence[int] = ()
) -> dict[str, str]:
    """Requests per second, p50, p99 and errors of ``seconds`` of load on ``url``; with
    ``server_pids``, also the CPU time those processes spent per request (``cpu_us``), which
    a busy machine's speed changes far less than its throughput."""
    threads = min(connections, 2)
    cpu_before = cpu_seconds(server_pids)
    completed = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    output = completed.stdout
    cpu_spent = cpu_seconds(server_pids) - cpu_before if server_pids else None

    def find(pattern: str) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        return match[1] if match else "-"

    requests = find(r"^\s*(\d+) requests in")
    cpu_us = "-"
    if cpu_spent is not None and requests not in ("-", "0"):
        cpu_us = f"{cpu_spent / int(requests) * 1e6:.1f}"
    return {
        "cpu_us": cpu_us,
        "rps": find(r"^Requests/sec:\s+([\d.]+)"),
        # The percentiles of wrk's "Latency Distribution" block, one per line.
        "p50": find(r"^\s+50%\s+(\S+)$"),
        "p99": find(r"^\s+99%\s+(\S+)$"),
        "errors": str(_count_errors(output)),
    }


def _count_errors(wrk_output: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_output)
    socket_errors = re.search(r"Socket errors: (.*)", wrk_output)
    count = int(non_2xx[1]) if non_2xx else 0
    if socket_errors:
        count += sum(int(number) for number in re.findall(r"\d+", socket_errors[1]))
    return count


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time of processes ``pids`` so far, all their threads included."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_pids(supervisor: int) -> list[int]:
    """``supervisor`` and its children (uvicorn's workers), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == supervisor:
            children.append(int(entry.name))
    return [supervisor, *sorted(children)]


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def seconds_to_first_answer(
    env: dict[str, str], ask: Callable[[str], httpx.Response]
) -> tuple[float, float]:
    """From ``python -m api`` starting to the first 200 of ``ask(base_url)``: the seconds, and
    the CPU seconds its processes had spent by then (which a busy machine does not inflate)."""
    port = free_port()
    environment = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if ask(f"http://127.0.0.1:{port}").status_code == 200:
                    seconds = time.perf_counter() - started
                    return seconds, cpu_seconds(server_pids(process.pid))
            except httpx.TransportError:
                time.sleep(0.01)
    finally:
        stop_process(process)
