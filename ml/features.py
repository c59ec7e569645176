"""Audio features shared by training and serving: one code path, so they cannot drift apart.

Pure functions on numpy arrays. Only the audio runtimes and the training scripts import this
module (librosa costs seconds to import and to call the first time).

The pipeline for one upload: mix down, resample to the model's rate, cut into windows of the
model's clip length (a short clip is zero-padded at the end, a long one is cut into windows
every ``window_hop_seconds``, quiet windows dropped), peak-normalise each window, then
log-mel power scaled to [-1, 1] relative to the window's loudest bin. A model answers the mean
of its windows' probabilities.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

import librosa
import numpy as np

logger = logging.getLogger(__name__)

_AMIN = 1e-10
# dB of an all-zero window; silence maps to the floor instead of being "normalised" up.
_SILENCE_DB = 10.0 * np.log10(_AMIN)


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
    if orig_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    resampled = librosa.resample(
        samples, orig_sr=orig_rate, target_sr=target_rate, res_type="soxr_hq"
    )
    return np.asarray(resampled, dtype=np.float32)


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


def mel_power(windows: np.ndarray, sample_rate: int, params: FeatureParams) -> np.ndarray:
    """(..., n_mels, frames) mel power spectrogram of (..., samples) windows."""
    mel = librosa.feature.melspectrogram(
        y=windows,
        sr=sample_rate,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,
        fmin=params.fmin,
        fmax=params.fmax,
        power=2.0,
    )
    return np.asarray(mel, dtype=np.float32)


def mel_db(power: np.ndarray, top_db: float) -> np.ndarray:
    """dB relative to each spectrogram's loudest bin, floored at ``-top_db``."""
    db = 10.0 * np.log10(np.maximum(power, _AMIN))
    ref = np.maximum(db.max(axis=(-2, -1), keepdims=True), _SILENCE_DB + top_db)
    floored: np.ndarray = np.maximum(db - ref, -top_db).astype(np.float32)
    return floored


def log_mel_from_power(power: np.ndarray, top_db: float) -> np.ndarray:
    """Mel power to the network's input: relative dB scaled from [-top_db, 0] to [-1, 1]."""
    half = top_db / 2.0
    return ((mel_db(power, top_db) + half) / half).astype(np.float32)


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


def log_mel(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
) -> np.ndarray:
    """The CNN's input for one clip: (windows, n_mels, frames) float32 in [-1, 1]."""
    windows = prepare_windows(samples, sample_rate, target_rate, clip_seconds, params)
    return log_mel_from_power(mel_power(windows, target_rate, params), params.top_db)


def mfcc_statistics_from_power(power: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(..., features) summary of (..., n_mels, frames) mel power: MFCC, delta and envelope."""
    db = mel_db(power, params.top_db)
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=params.n_mfcc)
    delta = librosa.feature.delta(mfcc, mode="nearest")
    envelope = _frame_loudness(db)
    centroid = _mel_centroid(power)
    parts = [
        mfcc.mean(axis=-1),
        mfcc.std(axis=-1),
        delta.std(axis=-1),
        _envelope_shape(envelope),
        centroid.mean(axis=-1, keepdims=True),
        centroid.std(axis=-1, keepdims=True),
    ]
    return np.concatenate(parts, axis=-1).astype(np.float32)


def _frame_loudness(db: np.ndarray) -> np.ndarray:
    """Per-frame loudness in dB, from the mean power over mel bins."""
    power = np.mean(10.0 ** (db / 10.0), axis=-2)
    loudness: np.ndarray = 10.0 * np.log10(np.maximum(power, _AMIN))
    return loudness


def _envelope_shape(envelope: np.ndarray) -> np.ndarray:
    """Where the peak is, how fast it decays after it, how much the level varies."""
    frames = envelope.shape[-1]
    peak_at = np.argmax(envelope, axis=-1)
    time = np.arange(frames, dtype=np.float32) / frames
    after_peak = time >= (peak_at[..., np.newaxis] / frames)
    weights = after_peak.astype(np.float32)
    count = np.maximum(weights.sum(axis=-1), 1.0)
    t_mean = (weights * time).sum(axis=-1) / count
    e_mean = (weights * envelope).sum(axis=-1) / count
    cov = (weights * (time - t_mean[..., None]) * (envelope - e_mean[..., None])).sum(axis=-1)
    var = (weights * (time - t_mean[..., None]) ** 2).sum(axis=-1)
    slope = cov / np.maximum(var, 1e-6)
    stats = [
        peak_at / frames,
        slope / 100.0,
        envelope.std(axis=-1) / 10.0,
        (envelope[..., -1] - envelope.max(axis=-1)) / 10.0,
    ]
    return np.stack(stats, axis=-1)


def _mel_centroid(power: np.ndarray) -> np.ndarray:
    """Spectral centroid per frame, as a fraction of the mel bins."""
    bins = np.linspace(0.0, 1.0, power.shape[-2], dtype=np.float32)[:, np.newaxis]
    total = np.maximum(power.sum(axis=-2), _AMIN)
    centroid: np.ndarray = (power * bins).sum(axis=-2) / total
    return centroid


def mfcc_statistics(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
) -> np.ndarray:
    """The second candidate's input for one clip: (windows, features) float32."""
    windows = prepare_windows(samples, sample_rate, target_rate, clip_seconds, params)
    return mfcc_statistics_from_power(mel_power(windows, target_rate, params), params)
