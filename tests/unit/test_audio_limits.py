"""Audio that is small on the wire but huge decoded (issue 9, finding 5) is refused unread.

A 97 KB FLAC of silence, 29.5 s of 8 channels at 384 kHz, decoded to 370 MB of float32. The
header says how much an upload will decode to (frames x channels), so decode_audio judges it
before reading a sample: a rate or channel count no recording needs is invalid, and more
samples than a longest-allowed stereo clip at 48 kHz (or the model's rate) is too large.
"""

from __future__ import annotations

import time

import pytest

from ml.audio import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    AudioTooLargeError,
    decode_audio,
    max_decoded_samples,
)
from ml.errors import InvalidInputError
from tests.factories import silence
from tests.helpers import run_python

MAX_SECONDS = 30.0
# Refusing from the header reads no sample: far below the seconds that decoding took.
_QUICK_SECONDS = 0.5


@pytest.fixture(scope="module")
def hostile_flac() -> bytes:
    """The upload of the review: tiny, and 90 million samples once decoded."""
    data = silence(29.5, 384_000, 8)
    assert len(data) < 200_000
    return data


def _refusal(data: bytes, max_seconds: float = MAX_SECONDS) -> tuple[InvalidInputError, float]:
    started = time.perf_counter()
    with pytest.raises(InvalidInputError) as error:
        decode_audio(data, max_seconds)
    return error.value, time.perf_counter() - started


def test_the_hostile_flac_is_refused_for_its_rate_before_decoding(hostile_flac: bytes) -> None:
    error, seconds = _refusal(hostile_flac)

    assert not isinstance(error, AudioTooLargeError)  # 422: no recording needs 384 kHz
    assert "unsupported sample rate 384000 Hz" in error.problems["file"]
    assert f"{MAX_SAMPLE_RATE}" in error.problems["file"]
    assert seconds < _QUICK_SECONDS


def test_eight_channels_at_192_khz_for_29_s_is_too_large() -> None:
    data = silence(29.5, 192_000, 8)

    error, seconds = _refusal(data)

    assert isinstance(error, AudioTooLargeError)  # 413
    problem = error.problems["file"]
    assert "8 channels x 192000 Hz x 29.5 s" in problem, problem
    assert f"{max_decoded_samples(MAX_SECONDS):,}" in problem
    assert seconds < _QUICK_SECONDS


def test_more_channels_than_allowed_is_invalid() -> None:
    data = silence(0.1, 16_000, MAX_CHANNELS + 4, fmt="WAV")

    error, seconds = _refusal(data)

    assert not isinstance(error, AudioTooLargeError)
    assert f"{MAX_CHANNELS + 4} channels" in error.problems["file"]
    assert f"at most {MAX_CHANNELS}" in error.problems["file"]
    assert seconds < _QUICK_SECONDS


def test_too_long_is_too_large() -> None:
    error, _ = _refusal(silence(3.0, 16_000, 1, fmt="WAV"), max_seconds=2)

    assert isinstance(error, AudioTooLargeError)
    assert "longer than the 2 s allowed" in error.problems["file"]


@pytest.mark.parametrize(
    ("seconds", "rate", "channels"),
    [
        (MAX_SECONDS - 0.5, 48_000, 2),  # the budget's own clip, as long as allowed
        (0.5, 192_000, 8),  # any rate and channels allowed, when short enough
        (2.0, 96_000, 6),
    ],
)
def test_uploads_within_the_budget_decode_to_mono(seconds: float, rate: int, channels: int) -> None:
    clip = decode_audio(silence(seconds, rate, channels), MAX_SECONDS)

    assert clip.samples.ndim == 1 and clip.sample_rate == rate
    assert clip.duration_seconds == pytest.approx(seconds)


def test_the_budget_grows_with_a_model_rate_above_48_khz() -> None:
    assert max_decoded_samples(30.0) == 30 * 48_000 * 2
    assert max_decoded_samples(30.0, model_rate=22_050) == 30 * 48_000 * 2
    assert max_decoded_samples(30.0, model_rate=96_000) == 30 * 96_000 * 2
    data = silence(10.0, 96_000, 2)
    with pytest.raises(AudioTooLargeError):
        decode_audio(data, 10.0)
    assert decode_audio(data, 10.0, max_samples=max_decoded_samples(10.0, 96_000)).format == "flac"


def test_refusing_the_hostile_flac_costs_no_memory() -> None:
    # A fresh interpreter, so that its peak resident size measures this decode alone.
    program = """
import io, json, resource, time
import numpy as np, soundfile
from ml.audio import decode_audio
from ml.errors import InvalidInputError
from tests.factories import silence
results = {}
for name, rate in (("rate", 384_000), ("budget", 192_000)):
    data = silence(29.5, rate, 8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        decode_audio(data, 30.0)
    except InvalidInputError as error:
        results[name] = {
            "problem": error.problems["file"],
            "seconds": time.perf_counter() - started,
            "grown_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before,
        }
print(json.dumps(results))
"""
    results = run_python(program)

    assert set(results) == {"rate", "budget"}
    for result in results.values():
        assert result["seconds"] < _QUICK_SECONDS, result
        # Decoding it took 430 MB; refusing it, libsndfile's header buffers at most.
        assert result["grown_kib"] < 20 * 1024, result
