"""Audio features of the training stack: librosa's mel spectrogram and MFCC statistics.

Pure functions on numpy arrays. Only the librosa-based audio runtimes and the training
scripts import this module (librosa costs seconds to import and to call the first time);
the windowing and the scaling are ``ml.log_mel``'s, which serving uses without librosa, so
that the two cannot drift apart. A model answers the mean of its windows' probabilities.
"""

from __future__ import annotations

import logging

import librosa
import numpy as np

from ml.log_mel import (
    AMIN,
    FeatureParams,
    clip_windows,
    fit_length,
    log_mel_from_power,
    mel_db,
    peak_normalise,
    prepare_windows,
    resample,
    to_mono,
)

__all__ = [
    "FeatureParams",
    "clip_windows",
    "fit_length",
    "log_mel",
    "log_mel_from_power",
    "mel_db",
    "mel_filterbank",
    "mel_power",
    "mfcc_statistics",
    "peak_normalise",
    "prepare_windows",
    "resample",
    "to_mono",
]

logger = logging.getLogger(__name__)


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


def mel_filterbank(sample_rate: int, params: FeatureParams) -> np.ndarray:
    """(n_mels, 1 + n_fft / 2) float32: the filterbank ``mel_power`` applies, which packaging
    stores beside a model for ``ml.log_mel``."""
    return librosa.filters.mel(
        sr=sample_rate,
        n_fft=params.n_fft,
        n_mels=params.n_mels,
        fmin=params.fmin,
        fmax=params.fmax,
        dtype=np.float32,
    )


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
    loudness: np.ndarray = 10.0 * np.log10(np.maximum(power, AMIN))
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
    total = np.maximum(power.sum(axis=-2), AMIN)
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
