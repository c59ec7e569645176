"""deploy/push_to_space.py: the Space gets the image's build context and nothing else, the
dry run touches nothing, and the Space is configured (Docker, GIT_COMMIT, the bucket volume)
before anything is uploaded. Against the pinned deploy client (deploy/requirements-deploy.txt,
which the dev requirements include); CI's deploy-dry-run job also runs the script itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def push() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "push_to_space", ROOT / "deploy" / "push_to_space.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["push_to_space"] = module
    spec.loader.exec_module(module)
    return module


def test_the_space_gets_the_build_context_and_its_dockerfile(push: ModuleType) -> None:
    files = push.space_files()
    for needed in ("Dockerfile", "README.md", "requirements.txt", "deploy/start.sh", "api/main.py"):
        assert needed in files
    assert any(name.startswith("models/attrition-logreg/") for name in files)
    for left_out in ("tests/", "bench/", ".github/", ".ci/", "artifacts/"):
        assert not any(name.startswith(left_out) for name in files), left_out


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("tests/unit/test_x.py", True),
        ("api/__pycache__/main.cpython-311.pyc", True),
        ("api/main.py", False),
        ("testsuite.py", False),
    ],
)
def test_dockerignore_rules(push: ModuleType, path: str, ignored: bool) -> None:
    assert push._ignored(path, ["tests", "**/__pycache__", "**/*.pyc"]) is ignored


def test_dry_run_stages_and_prints_the_plan(
    push: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    staged = tmp_path / "space"
    argv = ["--dry-run", "--stage", str(staged), "--space", "me/space", "--bucket", "me/traces"]
    assert push.main([*argv, "--commit", "abc123"]) == 0

    out = capsys.readouterr().out
    assert "GIT_COMMIT=abc123" in out and "hf://buckets/me/traces:/data:rw" in out
    assert (staged / "Dockerfile").is_file() and (staged / "deploy" / "start.sh").is_file()
    assert not (staged / "tests").exists()


class FakeApi:
    def __init__(self, volumes: list[Any]) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._volumes = volumes

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args[1:] or kwargs))
            return type("Runtime", (), {"volumes": self._volumes})()

        return call


def test_configure_mounts_the_bucket_and_keeps_other_volumes(push: ModuleType) -> None:
    other = push.Volume(type="model", source="me/model", mount_path="/models")
    old = push.Volume(type="bucket", source="me/old", mount_path="/data")
    api = FakeApi([other, old])

    push.configure(api, "me/space", "abc123", "me/traces")

    names = [name for name, _ in api.calls]
    assert names == [
        "create_repo",
        "add_space_variable",
        "create_bucket",
        "get_space_runtime",
        "set_space_volumes",
    ]
    assert api.calls[1][1] == ("GIT_COMMIT", "abc123")
    (volumes,) = api.calls[-1][1]
    assert [v.to_dict() for v in volumes] == [
        other.to_dict(),
        push.bucket_volume("me/traces").to_dict(),
    ]
