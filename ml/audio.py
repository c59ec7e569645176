"""Decoding of uploaded audio files, for the API and the audio runtimes.

The format is read from the bytes themselves (never from the file name or the declared
content type), so that a renamed or mislabelled file is still judged on what it is.
soundfile (libsndfile) is imported on first use only: the API imports this module at start.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.errors import InvalidInputError, UnsupportedFormatError

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS: tuple[str, ...] = ("wav", "flac", "ogg", "mp3")
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000

_FIELD = "file"


@dataclass(frozen=True)
class AudioClip:
    """A decoded upload: mono float32 samples at their original sample rate."""

    samples: np.ndarray
    sample_rate: int
    duration_seconds: float
    format: str


def detect_format(data: bytes) -> str | None:
    """The container format of ``data`` from its magic bytes, or None when not audio we read."""
    if len(data) >= 12 and data[:4] in (b"RIFF", b"RIFX", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or _is_mpeg_audio_frame(data):
        return "mp3"
    return None


def _is_mpeg_audio_frame(data: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a valid version and layer III."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return False
    version = (data[1] >> 3) & 0x03
    layer = (data[1] >> 1) & 0x03
    bitrate_index = data[2] >> 4
    rate_index = (data[2] >> 2) & 0x03
    return version != 0b01 and layer == 0b01 and bitrate_index not in (0, 15) and rate_index != 3


def decode_audio(
    data: bytes, max_seconds: float, formats: Sequence[str] = SUPPORTED_FORMATS
) -> AudioClip:
    """Decode wav, flac, ogg (Vorbis, Opus) or mp3 bytes into a mono clip.

    Raises ``InvalidInputError({"file": ...})`` for empty, corrupt or too long input, or
    input that holds no finite samples; ``UnsupportedFormatError`` for content that is not
    audio in one of ``formats`` (those a model accepts).
    """
    if not data:
        raise InvalidInputError({_FIELD: "the file is empty"})
    audio_format = detect_format(data)
    if audio_format is None or audio_format not in formats:
        raise UnsupportedFormatError(
            {_FIELD: f"not a supported audio file: not audio in any of {', '.join(formats)}"}
        )
    samples, sample_rate = _read(data, audio_format, max_seconds)
    duration = len(samples) / sample_rate
    if duration > max_seconds:
        # Only mp3 gets here (its header length is an estimate); decoding stopped early.
        raise InvalidInputError({_FIELD: f"the audio is longer than the {max_seconds:g} s allowed"})
    return AudioClip(
        samples=samples, sample_rate=sample_rate, duration_seconds=duration, format=audio_format
    )


def _read(data: bytes, audio_format: str, max_seconds: float) -> tuple[np.ndarray, int]:
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as source:
            sample_rate = int(source.samplerate)
            _check_header(source.frames, sample_rate, audio_format, max_seconds)
            # Read one second more than allowed at most: mp3 frame counts are estimates,
            # and a lying header must not make us decode an unbounded stream.
            limit = int((max_seconds + 1) * sample_rate)
            frames = source.read(frames=limit, dtype="float32", always_2d=True)
    except InvalidInputError:
        raise
    except Exception as error:  # libsndfile reports corrupt data in many ways
        logger.debug("could not decode %s upload: %s", audio_format, error)
        raise InvalidInputError({_FIELD: f"corrupt or unreadable {audio_format} audio"}) from error
    if frames.shape[0] == 0:
        raise InvalidInputError({_FIELD: f"the {audio_format} file holds no audio samples"})
    if not np.isfinite(frames).all():
        raise InvalidInputError({_FIELD: "the audio holds non-finite (NaN or infinite) samples"})
    # Mix down by averaging so that out-of-phase channels do not clip.
    mono = frames.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(mono), sample_rate


def _check_header(frames: int, sample_rate: int, audio_format: str, max_seconds: float) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InvalidInputError(
            {
                _FIELD: f"unsupported sample rate {sample_rate} Hz "
                f"(expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)"
            }
        )
    if frames <= 0 and audio_format != "mp3":
        raise InvalidInputError({_FIELD: f"the {audio_format} file holds no audio samples"})
    # mp3 frame counts are estimates: judge mp3 on the decoded samples instead.
    if audio_format != "mp3" and frames / sample_rate > max_seconds:
        raise InvalidInputError({_FIELD: _too_long(frames / sample_rate, max_seconds)})


def _too_long(duration: float, max_seconds: float) -> str:
    return f"the audio lasts {duration:.1f} s, longer than the {max_seconds:g} s allowed"
