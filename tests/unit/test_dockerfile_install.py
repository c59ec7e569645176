"""The Space image's install step, checked without Docker: what the Dockerfile installs exists,
is in the image when the install runs, and is pinned. CI's smoke job runs the same step."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def index_of(keyword: str, arguments: str) -> int:
    return next(
        position
        for position, (k, args) in enumerate(instructions())
        if k == keyword and args == arguments
    )


def pip_installs(run_arguments: str) -> list[list[str]]:
    """The pip install commands of one RUN: in the line, or in a repository script it runs."""
    commands = []
    for command in re.split(r"&&|;", run_arguments):
        words = shlex.split(command)
        if words[:1] == ["sh"]:
            words = words[1:]
        if words and (ROOT / words[0]).is_file():
            commands.extend(script_commands(ROOT / words[0]))
        elif words:
            commands.append(words)
    return [words for words in commands if "install" in words and any("pip" in w for w in words)]


def install_step() -> tuple[int, list[list[str]]]:
    """The position of the RUN that installs the Python requirements, and its pip commands."""
    for position, (keyword, arguments) in enumerate(instructions()):
        if keyword == "RUN" and pip_installs(arguments):
            return position, pip_installs(arguments)
    raise AssertionError("the Dockerfile installs no Python requirements")


def script_commands(script: Path) -> list[list[str]]:
    text = re.sub(r"\\\n", " ", script.read_text())
    return [
        shlex.split(line, comments=True)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def installed_requirement_files() -> list[str]:
    files = []
    for words in install_step()[1]:
        files += [
            words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-r", "--requirement")
        ]
    return files


def requirement_lines(path: Path) -> list[str]:
    return [
        line.split("#", 1)[0].strip()
        for line in path.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]


def test_the_install_step_reads_requirements_txt_and_the_space_extras() -> None:
    assert installed_requirement_files() == ["requirements.txt", "deploy/requirements-space.txt"]


@pytest.mark.parametrize("name", installed_requirement_files())
def test_installed_requirements_files_exist_and_are_copied_before_the_install(name: str) -> None:
    assert (ROOT / name).is_file(), f"the Dockerfile installs {name}, which does not exist"
    copied = [
        source
        for keyword, args in instructions()[: install_step()[0]]
        if keyword == "COPY"
        for source in shlex.split(args)[:-1]
        if not source.startswith("--")
    ]
    assert name in copied, f"{name} is not in the image when the install step runs"


@pytest.mark.parametrize("name", installed_requirement_files())
def test_image_requirements_are_pinned(name: str) -> None:
    # An unpinned line would let a Space rebuild pick up a release nobody tested.
    loose = [line for line in requirement_lines(ROOT / name) if "==" not in line]
    assert not loose, f"{name}: pin these with ==: {loose}"


def test_torch_is_the_cpu_build_at_the_pinned_version() -> None:
    pins = [
        line for line in requirement_lines(ROOT / "requirements.txt") if line.startswith("torch==")
    ]
    assert len(pins) == 1, "requirements.txt must pin torch once: the install step reads it there"
    first_install = install_step()[1][0]
    assert "--index-url" in first_install, "torch must come from the CPU index, before the rest"
    assert CPU_TORCH_INDEX in (ROOT / "deploy" / "install-deps.sh").read_text()


def test_requirements_are_installed_before_the_code_is_copied() -> None:
    # Otherwise every code change reinstalls every dependency.
    assert install_step()[0] < index_of("COPY", "--chown=1000:1000 . .")


def test_the_image_follows_the_space_conventions() -> None:
    keywords = dict(instructions())
    assert keywords["USER"] == "1000"
    assert keywords["EXPOSE"] == "7860"
    assert "HEALTHCHECK" in keywords
    # Through sh: the Space's upload API does not keep executable bits.
    assert keywords["CMD"] == '["sh", "deploy/start.sh"]'
    assert (ROOT / "deploy" / "start.sh").is_file()
