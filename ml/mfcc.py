"""MFCC statistics in numpy alone: what serving computes for the sklearn-audio models.

The MFCC model's input is a summary of each window's log-mel: the mean and spread of its MFCC
(DCT-II, orthonormal, of the relative-dB mel spectrogram, as ``librosa.feature.mfcc``), the
spread of their deltas (``librosa.feature.delta``: a 9-frame Savitzky-Golay slope, edges
repeated), the loudness envelope's shape and the mel centroid. ``ml.features`` (the training
stack) computes the MFCC and deltas with librosa and the rest with ``summarise`` from here, so
that the two cannot drift apart; ``tests/unit/test_mfcc.py`` proves them equal within
``LIBROSA_TOLERANCE`` on the evaluation clips.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ml.log_mel import AMIN, FeatureParams, clip_mel_power, mel_db

LIBROSA_TOLERANCE = 5e-4
"""Largest difference allowed between these statistics and librosa's, feature by feature:
the MFCC are sums of 64 dB values (tens of units each), so float32 rounding of the two STFTs
and DCTs reaches 1e-4 to 1e-3 there; every other statistic agrees far closer."""

DELTA_WIDTH = 9
"""``librosa.feature.delta``'s default window: the slope over 4 frames either side."""


@lru_cache(maxsize=8)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """(n_mfcc, n_mels) float32: the first rows of the orthonormal DCT-II (scipy's norm="ortho")."""
    k = np.arange(n_mfcc, dtype=np.float64)[:, np.newaxis]
    n = np.arange(n_mels, dtype=np.float64)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    matrix: np.ndarray = basis.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def mfcc_from_db(db: np.ndarray, n_mfcc: int) -> np.ndarray:
    """(..., n_mfcc, frames) MFCC of (..., n_mels, frames) dB: ``librosa.feature.mfcc(S=db)``."""
    result: np.ndarray = np.matmul(dct_matrix(n_mfcc, db.shape[-2]), db)
    return result


def delta(data: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """First-order delta along the last axis: ``librosa.feature.delta(data, mode="nearest")``.

    A first-degree Savitzky-Golay derivative is the least-squares slope over the window,
    sum(k * x[t + k]) / sum(k²) for k in -h..h, the edge values repeated beyond the ends.
    """
    half = width // 2
    padded = np.pad(data, [(0, 0)] * (data.ndim - 1) + [(half, half)], mode="edge")
    frames = data.shape[-1]
    total = np.zeros_like(data)
    for k in range(1, half + 1):
        total += k * (
            padded[..., half + k : half + k + frames] - padded[..., half - k : half - k + frames]
        )
    scale = 2.0 * sum(k * k for k in range(1, half + 1))
    result: np.ndarray = (total / scale).astype(data.dtype, copy=False)
    return result


def summarise(
    power: np.ndarray, db: np.ndarray, mfcc: np.ndarray, deltas: np.ndarray
) -> np.ndarray:
    """(..., features) float32: the statistics the model reads, from a window's mel power, its
    relative dB, MFCC and MFCC deltas."""
    centroid = _mel_centroid(power)
    parts = [
        mfcc.mean(axis=-1),
        mfcc.std(axis=-1),
        deltas.std(axis=-1),
        _envelope_shape(_frame_loudness(db)),
        centroid.mean(axis=-1, keepdims=True),
        centroid.std(axis=-1, keepdims=True),
    ]
    return np.concatenate(parts, axis=-1).astype(np.float32)


def mfcc_statistics_from_power(power: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(..., features) summary of (..., n_mels, frames) mel power: MFCC, delta and envelope."""
    db = mel_db(power, params.top_db)
    mfcc = mfcc_from_db(db, params.n_mfcc)
    return summarise(power, db, mfcc, delta(mfcc))


def mfcc_statistics(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
    filterbank: np.ndarray,
) -> np.ndarray:
    """The MFCC model's input for one clip: (windows, features) float32."""
    power = clip_mel_power(samples, sample_rate, target_rate, clip_seconds, params, filterbank)
    return mfcc_statistics_from_power(power, params)


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
