"""``python -m api`` itself: how it reports bad settings, and what it leaves behind."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import api.__main__ as entry
from tests.helpers import ROOT
from tests.live_server import wait_until_gone


def run_entry_point(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api"],
        cwd=tmp_path,  # no .env here
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"SECRET_KEY": "too-short-SECRET-TAIL", "ADMIN_PASSWORD": "PASSWORD-TAIL"},
            "SECRET_KEY",
        ),
        ({"SECRET_KEY": "A" * 60 + "SECRET-TAIL", "ADMIN_PASSWORD": "short-TAIL"}, "SECRET_KEY"),
        ({"SECRET_KEY": "Xq3-vN8_tLw1ZbR6yHc0PkMa9sJeUd4G", "ADMIN_PASSWORD": "TAIL"}, "ADMIN"),
        ({"SECRET_KEY": "SECRET-TAIL", "PORT": "PORT-TAIL", "WORKERS": "0"}, "PORT"),
    ],
)
def test_bad_settings_are_named_without_their_values(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    completed = run_entry_point(tmp_path, ENV="prod", ADMIN_USERNAME="root", **env)
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert named in output, output
    assert "TAIL" not in output, output
    assert "Traceback" not in output, output  # one line per problem, not pydantic's dump


def test_each_problem_gets_its_own_line(tmp_path: Path) -> None:
    completed = run_entry_point(tmp_path, ENV="prod", PORT="x", WORKERS="0", SECRET_KEY="a")
    lines = completed.stderr.splitlines()
    assert any(line.strip().startswith("PORT:") for line in lines), lines
    assert any(line.strip().startswith("WORKERS:") for line in lines), lines


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """main() sets variables for its workers: they are undone after the test."""
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("PROMETHEUS_MULTIPROC_DIR", "SECRET_KEY", "OMP_NUM_THREADS", "ENV"):
        # Set, then deleted: monkeypatch records only a variable that was there, and one
        # main() sets would otherwise outlive the test (and point later tests' metrics at a
        # removed folder).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(entry.tempfile, "tempdir", None)  # TMPDIR is read again
    return tmp_path


@pytest.mark.parametrize("uvicorn_exit", [None, SystemExit(3)])
def test_the_multiprocess_metrics_folder_is_removed_at_exit(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch, uvicorn_exit: SystemExit | None
) -> None:
    seen: list[Path] = []

    def fake_run(*_args: Any, **_kwargs: Any) -> None:
        folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        (folder / "counter_1234.db").write_bytes(b"samples")  # what a worker writes
        seen.append(folder)
        if uvicorn_exit:
            raise uvicorn_exit

    monkeypatch.setattr(entry.uvicorn, "run", fake_run)
    monkeypatch.setenv("WORKERS", "2")
    if uvicorn_exit:
        with pytest.raises(SystemExit):
            entry.main()
    else:
        entry.main()
    assert seen and seen[0].parent == clean_environment
    assert not seen[0].exists()


def test_a_folder_given_by_the_environment_is_kept(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = clean_environment / "metrics"
    given.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    monkeypatch.setenv("WORKERS", "2")
    monkeypatch.setattr(entry.uvicorn, "run", lambda *_args, **_kwargs: None)
    entry.main()
    assert given.is_dir()


_PR_GET_PDEATHSIG = 2

# A parent that spawns a worker as uvicorn does (multiprocessing, spawn), then is SIGKILLed.
_DOOMED_PARENT = r"""
import multiprocessing, os, signal, sys, time
import api.__main__ as entry


def worker():
    entry.die_with_parent()
    time.sleep(60)


if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=worker)
    child.start()
    time.sleep(float(sys.argv[1]))  # the worker has called die_with_parent by then
    print(child.pid, int(child.is_alive()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_spawned_worker_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "doomed_parent.py"
    script.write_text(_DOOMED_PARENT)
    completed = subprocess.run(
        [sys.executable, str(script), "3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    worker, alive = map(int, completed.stdout.split())
    assert alive, completed.stderr  # it was serving (sleeping) when its parent died
    if wait_until_gone([worker], timeout=10):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_the_server_process_itself_is_not_tied_to_its_parent() -> None:
    # WORKERS=1: uvicorn serves in the process that `python -m api` is, whose parent (a
    # shell, supervisord) may end first; only a worker spawned by uvicorn follows its parent.
    entry.die_with_parent()  # pytest is no multiprocessing child
    signal_number = ctypes.c_int(-1)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(signal_number), 0, 0, 0) == 0
    assert signal_number.value == 0
