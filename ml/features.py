"""Audio features of the training stack: librosa's mel spectrogram and MFCC statistics.

Pure functions on numpy arrays. Only the librosa-based audio runtimes and the training
scripts import this module (librosa costs seconds to import and to call the first time);
the windowing and the scaling are ``ml.log_mel``'s, and the MFCC statistics ``ml.mfcc``'s,
which serving uses without librosa, so that the two cannot drift apart. A model answers
the mean of its windows' probabilities.
"""

from __future__ import annotations

import librosa
import numpy as np

from ml.log_mel import (
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
from ml.mfcc import summarise

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
    "mfcc_statistics_from_power",
    "peak_normalise",
    "prepare_windows",
    "resample",
    "to_mono",
]


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


def clip_mel_power(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
) -> np.ndarray:
    """One clip's (windows, n_mels, frames) mel power, by librosa."""
    windows = prepare_windows(samples, sample_rate, target_rate, clip_seconds, params)
    return mel_power(windows, target_rate, params)


def log_mel(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
) -> np.ndarray:
    """The CNN's input for one clip: (windows, n_mels, frames) float32 in [-1, 1]."""
    power = clip_mel_power(samples, sample_rate, target_rate, clip_seconds, params)
    return log_mel_from_power(power, params.top_db)


def mfcc_statistics_from_power(power: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(..., features) summary of (..., n_mels, frames) mel power: MFCC, delta and envelope."""
    db = mel_db(power, params.top_db)
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=params.n_mfcc)
    delta = librosa.feature.delta(mfcc, mode="nearest")
    return summarise(power, db, mfcc, delta)


def mfcc_statistics(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    clip_seconds: float,
    params: FeatureParams,
) -> np.ndarray:
    """The second candidate's input for one clip: (windows, features) float32."""
    power = clip_mel_power(samples, sample_rate, target_rate, clip_seconds, params)
    return mfcc_statistics_from_power(power, params)
