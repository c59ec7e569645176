"""Audio features in numpy and soxr alone: what serving computes, with no librosa.

The feature parameters, the windowing of a clip, and the log-mel spectrogram from a mel
filterbank that packaging stores beside the model (``librosa.filters.mel`` at export, so
serving never builds one). ``ml.features`` (the training stack) uses the same windowing and
scaling from here, and librosa's own STFT and mel; ``tests/unit/test_log_mel.py`` proves the
two log-mel spectrograms equal within ``LIBROSA_TOLERANCE``.

The pipeline for one upload: mix down, resample to the model's rate, cut into windows of the
model's clip length (a short clip is zero-padded at the end, a long one is cut into windows
every ``window_hop_seconds``, quiet windows dropped), peak-normalise each window, then
log-mel power scaled to [-1, 1] relative to the window's loudest bin.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

LIBROSA_TOLERANCE = 1e-4
"""Largest difference allowed between this log-mel and librosa's, on the [-1, 1] scale the
network reads (0.004 dB at ``top_db`` 80): float32 rounding of two FFTs, nothing more."""

AMIN = 1e-10
# dB of an all-zero window; silence maps to the floor instead of being "normalised" up.
_SILENCE_DB = 10.0 * np.log10(AMIN)


@dataclass(frozen=True)
class FeatureParams:
    """Feature-extraction parameters, stored in the manifest's ``input.features``."""

    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 11_025.0
    top_db: float = 80.0
    n_mfcc: int = 20
    length: str = "pad_end_or_window"
    """Shorter clips are zero-padded at the end; longer ones are cut into windows."""
    window_hop_seconds: float = 1.0
    max_windows: int = 8
    quiet_window_db: float = 30.0
    """Windows this many dB below the loudest one hold no note worth judging."""
    normalise: str = "peak"

    @classmethod
    def from_manifest(cls, features: dict[str, Any]) -> FeatureParams:
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in features.items() if key in known})

    def as_manifest(self) -> dict[str, Any]:
        return asdict(self)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) samples to mono float32 by averaging the channels."""
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 2:
        array = array.mean(axis=1)
    if array.ndim != 1:
        raise ValueError(f"expected (n,) or (n, channels) samples, got shape {array.shape}")
    return array


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """soxr's high quality, to ``ceil(n * ratio)`` samples: what ``librosa.resample`` does."""
    if orig_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    import soxr  # a compiled extension: imported by the first clip at another rate

    resampled = soxr.resample(samples, orig_rate, target_rate, quality="soxr_hq")
    length = int(np.ceil(len(samples) * float(target_rate) / orig_rate))
    return fit_length(np.asarray(resampled, dtype=np.float32), length)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or crop the end, to exactly ``length`` samples."""
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))


def clip_windows(
    samples: np.ndarray, sample_rate: int, clip_seconds: float, params: FeatureParams
) -> np.ndarray:
    """(windows, clip samples): the clip padded, or cut into its loudest windows."""
    length = int(round(clip_seconds * sample_rate))
    if len(samples) <= length:
        return fit_length(samples, length)[np.newaxis, :]
    hop = max(1, int(round(params.window_hop_seconds * sample_rate)))
    starts = list(range(0, len(samples) - length + 1, hop))
    if starts[-1] != len(samples) - length:
        starts.append(len(samples) - length)
    windows = np.stack([samples[start : start + length] for start in starts])
    energy = np.mean(np.square(windows, dtype=np.float64), axis=1)
    keep = energy >= energy.max() * 10.0 ** (-params.quiet_window_db / 10.0)
    kept: np.ndarray = windows[keep]
    if len(kept) > params.max_windows:
        loudest = np.sort(np.argsort(energy[keep])[-params.max_windows :])
        kept = kept[loudest]
    return kept


def peak_normalise(windows: np.ndarray) -> np.ndarray:
    """Scale each window to peak 1 so that features do not depend on recording level."""
    peak = np.max(np.abs(windows), axis=-1, keepdims=True)
    normalised: np.ndarray = (windows / np.maximum(peak, 1e-8)).astype(np.float32)
    return normalised


def prepare_windows(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
) -> np.ndarray:
    """Mono, resampled, windowed and peak-normalised samples: (windows, clip samples)."""
    mono = resample(to_mono(samples), sample_rate, target_rate)
    return peak_normalise(clip_windows(mono, target_rate, clip_seconds, params))


def mel_filterbank(sample_rate: int, params: FeatureParams) -> np.ndarray:
    """(n_mels, 1 + n_fft / 2) float32: ``librosa.filters.mel``'s Slaney filterbank (Slaney's
    mel scale, each triangle normalised to unit area), computed the way librosa does.

    For a model that stores none beside it (``input.mel_filterbank``);
    ``tests/unit/test_log_mel.py`` proves the two equal.
    """
    bins = np.fft.rfftfreq(params.n_fft, d=1.0 / sample_rate)
    mels = np.linspace(_hz_to_mel(params.fmin), _hz_to_mel(params.fmax), params.n_mels + 2)
    edges = _mel_to_hz(mels)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, bins)
    weights = np.zeros((params.n_mels, len(bins)), dtype=np.float32)
    for i in range(params.n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : params.n_mels + 2] - edges[: params.n_mels]))[:, np.newaxis]
    return weights


# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_MEL_HZ_STEP = 200.0 / 3
_MEL_LOG_HZ = 1000.0
_MEL_LOG_MEL = _MEL_LOG_HZ / _MEL_HZ_STEP
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz >= _MEL_LOG_HZ:
        return float(_MEL_LOG_MEL + np.log(hz / _MEL_LOG_HZ) / _MEL_LOG_STEP)
    return hz / _MEL_HZ_STEP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    hz = _MEL_HZ_STEP * mels
    log_part = mels >= _MEL_LOG_MEL
    hz[log_part] = _MEL_LOG_HZ * np.exp(_MEL_LOG_STEP * (mels[log_part] - _MEL_LOG_MEL))
    result: np.ndarray = hz
    return result


def mel_power(windows: np.ndarray, filterbank: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(windows, n_mels, frames) mel power of (windows, samples) through ``filterbank``
    ((n_mels, 1 + n_fft / 2), as ``librosa.filters.mel`` builds it).

    |STFT|² as librosa computes it: centred frames, zero-padded ends, periodic Hann window.
    """
    half = params.n_fft // 2
    padded = np.pad(windows, ((0, 0), (half, half)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, params.n_fft, axis=-1)
    spectrum = np.fft.rfft(frames[:, :: params.hop_length] * _hann(params.n_fft), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    # One BLAS product over every frame of every window: (frames, bins) @ (bins, n_mels).
    mel = power.reshape(-1, power.shape[-1]) @ filterbank.T
    by_window = mel.reshape(len(windows), -1, filterbank.shape[0]).transpose(0, 2, 1)
    return np.ascontiguousarray(by_window)


@functools.cache  # one per n_fft: a request must not rebuild it
def _hann(length: int) -> np.ndarray:
    """The periodic Hann window (``scipy.signal.get_window("hann", length)``)."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)
    window.flags.writeable = False  # shared by every call
    return window


def mel_db(power: np.ndarray, top_db: float) -> np.ndarray:
    """dB relative to each spectrogram's loudest bin, floored at ``-top_db``."""
    db = 10.0 * np.log10(np.maximum(power, AMIN))
    ref = np.maximum(db.max(axis=(-2, -1), keepdims=True), _SILENCE_DB + top_db)
    floored: np.ndarray = np.maximum(db - ref, -top_db).astype(np.float32)
    return floored


def log_mel_from_power(power: np.ndarray, top_db: float) -> np.ndarray:
    """Mel power to the network's input: relative dB scaled from [-top_db, 0] to [-1, 1]."""
    half = top_db / 2.0
    return ((mel_db(power, top_db) + half) / half).astype(np.float32)


def clip_mel_power(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
    filterbank: np.ndarray,
) -> np.ndarray:
    """One clip's (windows, n_mels, frames) mel power: what both audio models read from."""
    windows = prepare_windows(samples, sample_rate, target_rate, clip_seconds, params)
    return mel_power(windows, filterbank, params)


def log_mel(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
    filterbank: np.ndarray,
) -> np.ndarray:
    """The CNN's input for one clip: (windows, n_mels, frames) float32 in [-1, 1]."""
    power = clip_mel_power(samples, sample_rate, target_rate, clip_seconds, params, filterbank)
    return log_mel_from_power(power, params.top_db)
