"""A clip with no note to judge (silence, near-silence, too short) is a 422 that says so."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ml.audio import MIN_AUDIO_SECONDS, SILENCE_PEAK_DBFS
from tests.factories import silence, tone, write_audio_model
from tests.helpers import trace_of

RATE = 22_050


@pytest.fixture
def audio_client(
    attrition_store: Path, make_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    write_audio_model(attrition_store)
    with TestClient(create_app(make_settings())) as client:
        yield client


def flac(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()


def noise(seconds: float, peak_dbfs: float) -> np.ndarray:
    signal = np.random.default_rng(0).uniform(-1.0, 1.0, int(seconds * RATE))
    return signal * 10.0 ** (peak_dbfs / 20.0)


@pytest.mark.parametrize(
    ("audio", "words"),
    [
        (silence(2.0, RATE, 1), "the clip is silent (peak level -inf dBFS"),
        (flac(noise(2.0, -80.0)), "the clip is silent (peak level -80"),
        (tone(0.05, RATE), f"too short to judge (0.05 s, needs at least {MIN_AUDIO_SECONDS:g} s)"),
    ],
    ids=["silence", "near-silence", "0.05 s"],
)
def test_a_clip_with_nothing_to_judge_is_refused(
    audio_client: TestClient, audio: bytes, words: str
) -> None:
    response = audio_client.post("/predict/instrument-mock", files={"file": ("a", audio)})

    assert response.status_code == 422, response.text
    assert words in response.json()["error"]
    assert trace_of(audio_client, response.json()["request_id"]).outcome == "invalid_input"


def test_a_quiet_but_audible_clip_is_judged(audio_client: TestClient) -> None:
    quiet = flac(noise(MIN_AUDIO_SECONDS + 0.05, SILENCE_PEAK_DBFS + 6.0))
    response = audio_client.post("/predict/instrument-mock", files={"file": ("a", quiet)})
    assert response.status_code == 200, response.text
