"""``make install`` says what it does: the first install takes minutes, and was silent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live_server import ROOT

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="needs make")


def test_every_install_step_is_announced_and_pip_is_not_silenced(tmp_path: Path) -> None:
    # A virtualenv that does not exist: make prints the whole recipe and runs none of it.
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-n", "install", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()

    steps = [line for line in recipe if line.startswith('echo "==> [')]
    installs = [line for line in recipe if " -m pip install " in line]
    assert len(steps) == 4 and all(f"[{n}/4]" in steps[n - 1] for n in range(1, 5))
    # Only pip's own upgrade is quiet; torch and the requirements show their progress.
    assert [line for line in installs if "--quiet" in line] == [installs[0]]
    assert "--upgrade pip" in installs[0] and len(installs) == 3
