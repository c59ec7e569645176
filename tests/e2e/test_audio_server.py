"""End to end with the real instrument models: upload a recording, get the instrument."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import MODELS_DIR, copy_model
from tests.live_server import LiveServer, live_api

pytestmark = pytest.mark.e2e

CLIPS = MODELS_DIR / "_evaluation" / "instrument-recognition"


def committed_clips() -> list[tuple[str, str]]:
    with (CLIPS / "labels.csv").open(newline="") as handle:
        return [(row["file"], row["label"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("audio-e2e")
    store = workdir / "models"
    # instrument-cnn@2 (onnx-audio) serves the bare name; @1 (torch) stays beside it.
    for name, version in (
        ("instrument-cnn", "1"),
        ("instrument-cnn", "2"),
        ("instrument-mfcc", "1"),
    ):
        copy_model(store, name, version)
    env = {
        "ENV": "dev",
        "DATABASE_URL": f"sqlite:///{workdir / 'traces.db'}",
        "MODELS_DIR": str(store),
        "DEFAULT_MODEL": "instrument-cnn",
        "FALLBACK_MODEL": "instrument-mfcc",
        "PRELOAD_MODELS": "instrument-cnn",
    }
    with live_api(workdir, env, timeout=120) as live:
        yield live


def test_a_violin_recording_is_recognised_as_a_violin(server: LiveServer) -> None:
    violin = next(name for name, label in committed_clips() if label == "violin")
    started = time.perf_counter()
    with (CLIPS / violin).open("rb") as audio:
        response = httpx.post(f"{server.url}/predict/instrument-cnn", files={"file": audio})
    first_answer_seconds = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["label"], body["fallback"]) == ("instrument-cnn", "violin", False)
    assert body["version"] == "2"  # the latest version: ONNX Runtime on numpy log-mel
    assert body["input"]["sample_rate"] == 22050 and body["input"]["duration_seconds"] > 1
    # PRELOAD_MODELS warmed the whole path at start: the first request pays no import.
    assert first_answer_seconds < 1.0, first_answer_seconds


def test_the_cnn_names_every_committed_clip(server: LiveServer) -> None:
    wrong = []
    for name, label in committed_clips():
        upload = {"file": (name, (CLIPS / name).read_bytes())}
        reply = httpx.post(f"{server.url}/predict", files=upload)
        assert reply.status_code == 200, reply.text
        if reply.json()["label"] != label:
            wrong.append((name, reply.json()["label"]))
    assert wrong == []


def test_the_mfcc_candidate_answers_too(server: LiveServer) -> None:
    name, _label = committed_clips()[0]
    # Its first request loads it, librosa and numba's compiled kernels included: seconds on
    # a busy machine, more than httpx's default 5 s timeout.
    reply = httpx.post(
        f"{server.url}/predict/instrument-mfcc",
        files={"file": (name, (CLIPS / name).read_bytes())},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.json()["model"] == "instrument-mfcc"


def test_an_image_is_not_an_instrument(server: LiveServer) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    reply = httpx.post(f"{server.url}/predict", files={"file": ("photo.png", png)})
    assert reply.status_code == 415 and "not audio" in reply.json()["error"]
