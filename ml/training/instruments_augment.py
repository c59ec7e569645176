"""Augmentation of mel power spectrograms, aimed at generalising across soundfonts.

Everything happens on precomputed mel power (linear, so that adding noise or a reverb tail is
a sum), in numpy on whole batches: an epoch costs milliseconds of augmentation instead of
recomputing STFTs. Gain is irrelevant once features are peak-normalised, so what varies
is what differs between recordings of the same instrument: the onset position and note
length, the spectral envelope (other samples, other microphones), pitch, room and noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ml.features import log_mel_from_power

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentParams:
    shift_left_frames: int = 30
    shift_right_frames: int = 12
    stretch: tuple[float, float] = (0.8, 1.6)
    mel_shift_bins: int = 2
    eq_db: float = 8.0
    lowpass_probability: float = 0.6
    lowpass_db_per_unit: float = 200.0
    """Steepest roll-off, in dB over the whole mel axis; the depth is capped at 80 dB."""
    reverb_probability: float = 0.5
    reverb_decay: tuple[float, float] = (0.3, 0.85)
    snr_db: tuple[float, float] = (15.0, 60.0)
    freq_masks: int = 2
    freq_mask_bins: int = 8
    time_masks: int = 2
    time_mask_frames: int = 10


def augment_power(power: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """A randomly varied copy of a (batch, n_mels, frames) mel power batch."""
    out = np.stack([_vary_time(spec, rng, params) for spec in power])
    out = _shift_mel(out, rng, params.mel_shift_bins)
    out = out * _random_eq(out.shape[0], out.shape[1], rng, params.eq_db)
    out = out * _random_lowpass(out.shape[0], out.shape[1], rng, params)
    out = _reverb(out, rng, params)
    return _add_noise(out, rng, params.snr_db)


def augment_log_mel(
    power: np.ndarray, rng: np.random.Generator, params: AugmentParams, top_db: float
) -> np.ndarray:
    """Network input for a training batch: augmented power, log-mel, then masking."""
    features = log_mel_from_power(augment_power(power, rng, params), top_db)
    return _mask(features, rng, params)


def _vary_time(spec: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Stretch in time (longer or shorter notes), then move the onset either way."""
    frames = spec.shape[-1]
    factor = rng.uniform(*params.stretch)
    source = np.clip(np.arange(frames) / factor, 0, frames - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, frames - 1)
    frac = (source - low).astype(np.float32)
    stretched = spec[:, low] * (1 - frac) + spec[:, high] * frac
    shift = int(rng.integers(-params.shift_left_frames, params.shift_right_frames + 1))
    if shift > 0:  # onset later: silence before it
        return np.concatenate([np.zeros_like(stretched[:, :shift]), stretched[:, :-shift]], axis=1)
    if shift < 0:  # window starts inside the note: the attack is gone
        shift = -shift
        return np.concatenate([stretched[:, shift:], np.zeros_like(stretched[:, :shift])], axis=1)
    return stretched


def _shift_mel(power: np.ndarray, rng: np.random.Generator, max_bins: int) -> np.ndarray:
    """Move each spectrogram a few mel bins up or down: another pitch and formant placement."""
    out = np.empty_like(power)
    for index, shift in enumerate(rng.integers(-max_bins, max_bins + 1, size=len(power))):
        if shift > 0:
            out[index, shift:] = power[index, :-shift]
            out[index, :shift] = 0.0
        elif shift < 0:
            out[index, :shift] = power[index, -shift:]
            out[index, shift:] = 0.0
        else:
            out[index] = power[index]
    return out


def _random_eq(batch: int, n_mels: int, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """Smooth random gain curves over frequency plus a tilt: another timbre, another mic."""
    position = np.linspace(0.0, 1.0, n_mels)
    curve = np.zeros((batch, n_mels))
    for harmonic in (1, 2, 3):
        amplitude = rng.uniform(-1, 1, size=(batch, 1)) * max_db / (2 * harmonic)
        phase = rng.uniform(0, 2 * np.pi, size=(batch, 1))
        curve += amplitude * np.cos(np.pi * harmonic * position + phase)
    tilt = rng.uniform(-max_db, max_db / 2, size=(batch, 1)) * position
    gain_db = curve + tilt
    return (10.0 ** (gain_db / 10.0))[:, :, np.newaxis].astype(np.float32)


def _random_lowpass(
    batch: int, n_mels: int, rng: np.random.Generator, params: AugmentParams
) -> np.ndarray:
    """Darken some spectra above a random cutoff.

    Soft notes are darker than loud ones on real instruments and in some soundfonts, but
    not in FluidR3's piano: without this, "dark" would be learnt to mean "guitar".
    """
    position = np.linspace(0.0, 1.0, n_mels)
    cutoff = rng.uniform(0.1, 0.7, size=(batch, 1))
    slope = rng.uniform(0.0, params.lowpass_db_per_unit, size=(batch, 1))
    slope *= rng.random(size=(batch, 1)) < params.lowpass_probability
    gain_db = -np.minimum(slope * np.clip(position - cutoff, 0.0, None), 80.0)
    return (10.0 ** (gain_db / 10.0))[:, :, np.newaxis].astype(np.float32)


def _reverb(power: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """An exponential tail per mel bin (a first-order IIR in time), on some of the batch."""
    decay = rng.uniform(*params.reverb_decay, size=(len(power), 1))
    decay *= rng.random(size=(len(power), 1)) < params.reverb_probability
    wet = rng.uniform(0.2, 1.0, size=(len(power), 1))
    tail = np.zeros_like(power[:, :, 0])
    out = np.empty_like(power)
    for frame in range(power.shape[-1]):
        tail = tail * decay + power[:, :, frame] * (1 - decay)
        out[:, :, frame] = power[:, :, frame] + wet * tail * (decay > 0)
    return out


def _add_noise(
    power: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float]
) -> np.ndarray:
    """Coloured noise at a random SNR, with a periodogram's frame-to-frame fluctuation."""
    batch, n_mels, frames = power.shape
    level = power.mean(axis=(1, 2)) * 10.0 ** (-rng.uniform(*snr_db, size=batch) / 10.0)
    tilt_db = rng.uniform(-20, 10, size=(batch, 1)) * np.linspace(0, 1, n_mels)
    colour = 10.0 ** (tilt_db / 10.0)
    colour /= colour.mean(axis=1, keepdims=True)
    fluctuation = rng.exponential(1.0, size=(batch, n_mels, frames))
    noise = level[:, None, None] * colour[:, :, None] * fluctuation
    return (power + noise).astype(np.float32)


def _mask(features: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """SpecAugment: hide a few mel bands and time spans so no single cue decides."""
    out = features.copy()
    batch, n_mels, frames = out.shape
    for index in range(batch):
        fill = out[index].mean()
        for _ in range(params.freq_masks):
            width = int(rng.integers(0, params.freq_mask_bins + 1))
            start = int(rng.integers(0, n_mels - width + 1))
            out[index, start : start + width, :] = fill
        for _ in range(params.time_masks):
            width = int(rng.integers(0, params.time_mask_frames + 1))
            start = int(rng.integers(0, frames - width + 1))
            out[index, :, start : start + width] = fill
    return out
