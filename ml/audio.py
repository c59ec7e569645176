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
# Studio masters stop at 192 kHz; more only inflates what a small upload decodes to.
MAX_SAMPLE_RATE = 192_000
# 7.1 surround; more channels than that is no recording a model of ours is meant for.
MAX_CHANNELS = 8
# The decoded-size budget is a clip of the longest allowed duration at this rate and channel
# count: a short clip may have more channels or a higher rate, a long one may not.
BUDGET_SAMPLE_RATE = 48_000
BUDGET_CHANNELS = 2

MIN_AUDIO_SECONDS = 0.1
"""Shorter holds less than 5 spectrogram frames at 22 kHz: no attack and decay to judge."""
SILENCE_PEAK_DBFS = -60.0
"""A clip peaking below this holds no note: a played instrument, even recorded quietly,
peaks far above it (16-bit dither sits near -96 dBFS, a quiet room's noise near -70)."""

_FIELD = "file"


class AudioTooLargeError(InvalidInputError):
    """The upload is longer, or decodes to more samples, than the limits allow (413)."""


def max_decoded_samples(max_seconds: float, model_rate: int = 0) -> int:
    """The most samples (frames x channels) an upload may decode to.

    Compressed audio of silence is almost nothing on the wire (a 97 KB FLAC decoded to
    370 MB): the body limit bounds the upload, this bounds what it becomes in memory.
    """
    return int(max_seconds * max(BUDGET_SAMPLE_RATE, model_rate) * BUDGET_CHANNELS)


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


@dataclass(frozen=True, slots=True)
class _Bounds:
    """What one upload may be: its longest duration and most decoded samples."""

    max_seconds: float
    max_samples: int


def decode_audio(
    data: bytes,
    max_seconds: float,
    formats: Sequence[str] = SUPPORTED_FORMATS,
    *,
    max_samples: int | None = None,
) -> AudioClip:
    """Decode wav, flac, ogg (Vorbis, Opus) or mp3 bytes into a mono clip.

    ``max_samples`` bounds frames x channels (``max_decoded_samples(max_seconds)`` when
    None); the header is judged against it before any sample is decoded.

    Raises ``AudioTooLargeError`` for input longer than ``max_seconds`` or larger decoded
    than ``max_samples``; ``InvalidInputError({"file": ...})`` for empty or corrupt input, a
    sample rate or channel count out of range, or input that holds no finite samples;
    ``UnsupportedFormatError`` for content that is not audio in one of ``formats`` (those a
    model accepts).
    """
    if not data:
        raise InvalidInputError({_FIELD: "the file is empty"})
    audio_format = detect_format(data)
    if audio_format is None or audio_format not in formats:
        raise UnsupportedFormatError(
            {_FIELD: f"not a supported audio file: not audio in any of {', '.join(formats)}"}
        )
    if max_samples is None:
        max_samples = max_decoded_samples(max_seconds)
    bounds = _Bounds(max_seconds, max_samples)
    samples, sample_rate = _read(data, audio_format, bounds)
    duration = len(samples) / sample_rate
    if duration > max_seconds:
        # mp3 gets here (its header length is an estimate), or a header that lied; decoding
        # stopped early.
        raise AudioTooLargeError(
            {_FIELD: f"the audio is longer than the {max_seconds:g} s allowed"}
        )
    return AudioClip(
        samples=samples, sample_rate=sample_rate, duration_seconds=duration, format=audio_format
    )


def check_judgeable(clip: AudioClip) -> None:
    """Refuse a clip too short to judge, or silent: no instrument answer would be honest.

    Raises ``InvalidInputError({"file": ...})`` (a 422) that says which and by how much.
    """
    if clip.duration_seconds < MIN_AUDIO_SECONDS:
        raise InvalidInputError(
            {
                _FIELD: f"the clip is too short to judge ({clip.duration_seconds:.3g} s, "
                f"needs at least {MIN_AUDIO_SECONDS:g} s)"
            }
        )
    peak = float(np.max(np.abs(clip.samples)))
    peak_dbfs = 20.0 * np.log10(peak) if peak > 0 else -np.inf
    if peak_dbfs < SILENCE_PEAK_DBFS:
        raise InvalidInputError(
            {
                _FIELD: f"the clip is silent (peak level {peak_dbfs:.1f} dBFS, below "
                f"{SILENCE_PEAK_DBFS:g} dBFS): record the instrument louder or closer"
            }
        )


def _read(data: bytes, audio_format: str, bounds: _Bounds) -> tuple[np.ndarray, int]:
    import soundfile

    try:
        # Opening reads the header only: nothing is decoded until ``read``.
        with soundfile.SoundFile(io.BytesIO(data)) as source:
            sample_rate, channels = int(source.samplerate), int(source.channels)
            _check_header(source.frames, sample_rate, channels, audio_format, bounds)
            frames = source.read(
                frames=_read_limit(sample_rate, channels, bounds), dtype="float32", always_2d=True
            )
    except InvalidInputError:
        raise
    except Exception as error:  # libsndfile reports corrupt data in many ways
        logger.debug("could not decode %s upload: %s", audio_format, error)
        raise InvalidInputError({_FIELD: f"corrupt or unreadable {audio_format} audio"}) from error
    if frames.shape[0] == 0:
        raise InvalidInputError({_FIELD: f"the {audio_format} file holds no audio samples"})
    if frames.size > bounds.max_samples:  # an mp3 whose header said less than it held
        raise AudioTooLargeError({_FIELD: _too_many_samples(bounds.max_samples)})
    if not np.isfinite(frames).all():
        raise InvalidInputError({_FIELD: "the audio holds non-finite (NaN or infinite) samples"})
    # Mix down by averaging so that out-of-phase channels do not clip.
    mono = frames.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(mono), sample_rate


def _read_limit(sample_rate: int, channels: int, bounds: _Bounds) -> int:
    """The most frames to decode, whatever the header says.

    mp3 frame counts are estimates, and a lying header must not make us decode an unbounded
    stream: one second past the duration, or one frame past the sample budget, is enough to
    tell that the upload is over its limits.
    """
    by_duration = int((bounds.max_seconds + 1) * sample_rate)
    by_budget = bounds.max_samples // channels + 1
    return min(by_duration, by_budget)


def _check_header(
    frames: int, sample_rate: int, channels: int, audio_format: str, bounds: _Bounds
) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InvalidInputError(
            {
                _FIELD: f"unsupported sample rate {sample_rate} Hz "
                f"(expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)"
            }
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise InvalidInputError(
            {_FIELD: f"unsupported: {channels} channels (expected 1 to at most {MAX_CHANNELS})"}
        )
    if frames <= 0 and audio_format != "mp3":
        raise InvalidInputError({_FIELD: f"the {audio_format} file holds no audio samples"})
    # mp3 frame counts are estimates: judge mp3 on the decoded samples instead.
    if audio_format == "mp3":
        return
    duration = frames / sample_rate
    if duration > bounds.max_seconds:
        raise AudioTooLargeError({_FIELD: _too_long(duration, bounds.max_seconds)})
    if frames * channels > bounds.max_samples:
        shape = f"{channels} channels x {sample_rate} Hz x {duration:.1f} s"
        raise AudioTooLargeError(
            {
                _FIELD: f"{shape} decodes to {frames * channels:,} samples; "
                + _too_many_samples(bounds.max_samples)
            }
        )


def _too_long(duration: float, max_seconds: float) -> str:
    return f"the audio lasts {duration:.1f} s, longer than the {max_seconds:g} s allowed"


def _too_many_samples(max_samples: int) -> str:
    return (
        f"at most {max_samples:,} samples (channels x frames) are allowed: send fewer "
        f"channels, a lower sample rate or a shorter clip"
    )
