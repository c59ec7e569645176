"""decode_audio: formats judged by content, mix-down, and a clear error for every bad upload."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from ml.audio import AudioClip, decode_audio, detect_format
from ml.errors import InvalidInputError

RATE = 22_050


def sine(seconds: float = 1.0, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "subtype", "expected"),
    [
        ("WAV", "PCM_16", "wav"),
        ("WAV", "FLOAT", "wav"),
        ("FLAC", None, "flac"),
        ("OGG", "VORBIS", "ogg"),
        ("MP3", "MPEG_LAYER_III", "mp3"),
    ],
)
def test_decode_supported_formats(fmt: str, subtype: str | None, expected: str) -> None:
    data = encode(sine(1.0), RATE, fmt, subtype)

    clip = decode_audio(data, max_seconds=10)

    assert isinstance(clip, AudioClip)
    assert clip.format == expected
    assert clip.sample_rate == RATE
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    # Lossy codecs add encoder delay and padding; the length stays close to one second.
    assert clip.duration_seconds == pytest.approx(1.0, abs=0.1)
    assert 0.3 < np.max(np.abs(clip.samples)) < 0.7


def test_decode_lossless_is_exact() -> None:
    samples = sine(0.5)

    clip = decode_audio(encode(samples, RATE, "FLAC", "PCM_24"), max_seconds=10)

    np.testing.assert_allclose(clip.samples, samples, atol=1e-6)


def test_decode_mixes_stereo_down_by_averaging() -> None:
    left = sine(0.5)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)

    clip = decode_audio(encode(stereo, RATE, "WAV", "FLOAT"), max_seconds=10)

    np.testing.assert_allclose(clip.samples, left / 2, atol=1e-6)


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
def test_decode_keeps_the_original_sample_rate(rate: int) -> None:
    clip = decode_audio(encode(sine(0.25, rate), rate, "WAV", "PCM_16"), max_seconds=10)

    assert clip.sample_rate == rate
    assert len(clip.samples) == int(0.25 * rate)


def test_format_comes_from_content_not_name() -> None:
    flac = encode(sine(0.2), RATE, "FLAC")

    assert detect_format(flac) == "flac"
    assert detect_format(b"not audio at all") is None


def test_empty_upload_is_rejected() -> None:
    with pytest.raises(InvalidInputError) as error:
        decode_audio(b"", max_seconds=10)
    assert "empty" in error.value.problems["file"]


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is a text file",
        b"%PDF-1.7\n" + bytes(200),
        bytes(range(256)) * 4,
        b'{"features": {"Age": 30}}',
    ],
)
def test_non_audio_is_rejected_as_unsupported(data: bytes) -> None:
    with pytest.raises(InvalidInputError) as error:
        decode_audio(data, max_seconds=10)
    assert "not a supported audio file" in error.value.problems["file"]


def test_unsupported_audio_format_is_rejected() -> None:
    aiff = encode(sine(0.2), RATE, "AIFF", "PCM_16")

    with pytest.raises(InvalidInputError) as error:
        decode_audio(aiff, max_seconds=10)
    assert "wav, flac, ogg, mp3" in error.value.problems["file"]


@pytest.mark.parametrize(
    ("fmt", "cut"),
    [("WAV", 30), ("FLAC", 50), ("OGG", 60)],
)
def test_corrupt_audio_is_rejected(fmt: str, cut: int) -> None:
    header = encode(sine(0.5), RATE, fmt)[:cut]
    corrupt = header + bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8))

    with pytest.raises(InvalidInputError) as error:
        decode_audio(corrupt, max_seconds=10)
    assert "file" in error.value.problems


def test_wav_header_without_samples_is_rejected() -> None:
    with pytest.raises(InvalidInputError) as error:
        decode_audio(encode(np.zeros(0, np.float32), RATE, "WAV", "PCM_16"), max_seconds=10)
    assert "no audio samples" in error.value.problems["file"]


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("MP3", "MPEG_LAYER_III")])
def test_too_long_audio_is_rejected(fmt: str, subtype: str) -> None:
    data = encode(sine(3.0), RATE, fmt, subtype)

    with pytest.raises(InvalidInputError) as error:
        decode_audio(data, max_seconds=2)
    assert "longer than the 2 s allowed" in error.value.problems["file"]


def test_non_finite_samples_are_rejected() -> None:
    samples = sine(0.2)
    samples[10] = np.nan

    with pytest.raises(InvalidInputError) as error:
        decode_audio(encode(samples, RATE, "WAV", "FLOAT"), max_seconds=10)
    assert "non-finite" in error.value.problems["file"]


def test_importing_the_decoder_imports_no_heavy_library() -> None:
    code = (
        "import sys, ml.audio; "
        "print(sorted(m for m in ('torch', 'librosa', 'soundfile') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
