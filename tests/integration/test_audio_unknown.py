"""A clip with no instrument in it is served as ``unknown`` by instrument-cnn@3.

Speech (espeak-ng, a voice and sentence the training never used), noise and hand claps made
here, uploaded to the real model through the API; a committed violin clip stays a violin.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient
from scipy import signal

from api.main import create_app
from api.settings import Settings
from tests.helpers import ROOT

MODEL = "instrument-cnn@3"
RATE = 22_050


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("unknown") / "traces.db"
    settings = Settings(
        _env_file=None, env="dev", database_url=f"sqlite:///{database}", models_dir=ROOT / "models"
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype(np.float32), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _speech() -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    text = "Good morning. The train to the city leaves at half past nine, from platform four."
    return subprocess.run(
        ["espeak-ng", "-v", "en-gb-scotland", "-s", "160", "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout


def _noise() -> bytes:
    rng = np.random.default_rng(2024)
    # Traffic-like rumble: white noise through a resonant low-pass, slowly swelling.
    b, a = signal.butter(2, 800, "lowpass", fs=RATE)
    rumble = signal.lfilter(b, a, rng.standard_normal(3 * RATE))
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * np.arange(3 * RATE) / RATE)
    samples = rumble * swell
    return _wav(0.5 * samples / np.abs(samples).max())


def _claps() -> bytes:
    rng = np.random.default_rng(99)
    samples = np.zeros(3 * RATE)
    for start in np.arange(0.1, 2.8, 0.45) + rng.uniform(-0.03, 0.03, 6):
        begin = int(start * RATE)
        length = int(0.12 * RATE)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.015 * RATE))
        b, a = signal.butter(2, [700, 3000], "bandpass", fs=RATE)
        samples[begin : begin + length] += signal.lfilter(b, a, burst)
    return _wav(0.8 * samples / np.abs(samples).max())


@pytest.mark.parametrize("make", [_speech, _noise, _claps], ids=["speech", "noise", "claps"])
def test_no_instrument_is_answered_unknown(client: TestClient, make) -> None:  # type: ignore[no-untyped-def]
    reply = client.post(f"/predict/{MODEL}", files={"file": ("clip.wav", make())})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["model"], body["version"]) == ("instrument-cnn", "3")
    assert body["label"] == "unknown", body["probabilities"]
    assert body["probabilities"]["unknown"] == max(body["probabilities"].values())


def test_an_instrument_is_still_an_instrument(client: TestClient) -> None:
    clip = ROOT / "models/_evaluation/instrument-recognition/violin-n070-v080.flac"
    reply = client.post(f"/predict/{MODEL}", files={"file": ("clip.flac", clip.read_bytes())})
    assert reply.status_code == 200, reply.text
    assert reply.json()["label"] == "violin", reply.json()["probabilities"]
