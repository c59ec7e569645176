"""Waveform augmentation aimed at real recordings: the room, the microphone and the speaker.

Rendered notes are dry, clean and full-band; a recording is none of these. ``augment_waveform``
passes a clip through what stands between an instrument and a file: a room (a synthetic
impulse response: early reflections and a noise tail whose high frequencies die first), the
colouring of a microphone or a small speaker (high-pass, low-pass, resonant peaks and dips),
a compressor (or a clipping input stage), background noise (white, pink, brown, mains hum)
and a level change. It runs when the feature cache is built (``instruments_cache``): each clip
is stored clean and as augmented copies, so that training pays for it once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from ml.training.render_instruments import SAMPLE_RATE


@dataclass(frozen=True)
class RoomParams:
    reverb_probability: float = 0.7
    rt60: tuple[float, float] = (0.15, 1.5)
    """Seconds for the tail to fall by 60 dB."""
    wet: tuple[float, float] = (0.1, 0.8)
    colour_probability: float = 0.8
    compress_probability: float = 0.4
    noise_probability: float = 0.6
    snr_db: tuple[float, float] = (8.0, 45.0)
    level_db: tuple[float, float] = (-30.0, 0.0)


def _biquad(samples: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.asarray(signal.lfilter(b / a[0], a / a[0], samples))


def peaking(
    samples: np.ndarray, centre: float, gain_db: float, q: float = 1.0, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The RBJ cookbook peaking filter: a resonance (or a dip) at ``centre`` Hz."""
    centre = min(centre, 0.45 * rate)
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * centre / rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w0), 1 - alpha / amp])
    return _biquad(samples, b, a)


def bandpass(
    samples: np.ndarray, centre: float, q: float = 1.0, rate: int = SAMPLE_RATE
) -> np.ndarray:
    centre = min(centre, 0.45 * rate)
    w0 = 2 * np.pi * centre / rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([alpha, 0.0, -alpha])
    a = np.array([1 + alpha, -2 * np.cos(w0), 1 - alpha])
    return _biquad(samples, b, a)


def highpass(
    samples: np.ndarray, cutoff: float, order: int = 2, rate: int = SAMPLE_RATE
) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, 0.45 * rate), "highpass", fs=rate, output="sos")
    return np.asarray(signal.sosfilt(sos, samples))


def lowpass(
    samples: np.ndarray, cutoff: float, order: int = 2, rate: int = SAMPLE_RATE
) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, 0.45 * rate), "lowpass", fs=rate, output="sos")
    return np.asarray(signal.sosfilt(sos, samples))


def impulse_response(rng: np.random.Generator, rt60: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room: the direct sound, a few early reflections, then a noise tail that
    decays by 60 dB in ``rt60`` seconds, faster above a random cutoff (air and walls absorb
    the highs)."""
    length = int(min(rt60, 1.5) * rate)
    t = np.arange(length) / rate
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * t / rt60)
    dark = lowpass(tail, rng.uniform(1500, 6000)) * 10.0 ** (-1.5 * t / rt60)
    mix = rng.uniform(0.3, 0.9)
    response = mix * dark + (1 - mix) * tail
    predelay = int(rng.uniform(0.005, 0.03) * rate)
    response = np.concatenate([np.zeros(predelay), response])[:length]
    for _ in range(int(rng.integers(2, 7))):
        at = int(rng.uniform(0.002, 0.05) * rate)
        if at < length:
            response[at] += rng.uniform(-0.6, 0.6)
    response /= np.sqrt(np.sum(response**2)) + 1e-9
    response[0] = 0.0
    return response


def reverberate(samples: np.ndarray, rng: np.random.Generator, params: RoomParams) -> np.ndarray:
    response = impulse_response(rng, rng.uniform(*params.rt60))
    wet = signal.fftconvolve(samples, response)[: len(samples)]
    dry_level = np.sqrt(np.mean(samples**2)) + 1e-12
    wet *= dry_level / (np.sqrt(np.mean(wet**2)) + 1e-12)
    mix = rng.uniform(*params.wet)
    return np.asarray((1 - mix) * samples + mix * wet)


def colour(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A microphone's or a speaker's response: band limits and a few resonances."""
    out = samples
    if rng.random() < 0.5:  # small speaker, phone, thin microphone
        out = highpass(out, rng.uniform(60, 600))
    if rng.random() < 0.5:  # cheap converter, muffled room, MP3 at a low rate
        out = lowpass(out, rng.uniform(2500, 10000))
    for _ in range(int(rng.integers(0, 4))):
        out = peaking(
            out,
            float(np.exp(rng.uniform(np.log(150), np.log(8000)))),
            rng.uniform(-9, 9),
            q=rng.uniform(0.7, 4),
        )
    return np.asarray(out)


def compress(samples: np.ndarray, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A feed-forward compressor on the RMS envelope, or (a third of the time) saturation."""
    peak = np.max(np.abs(samples)) + 1e-12
    x = samples / peak
    if rng.random() < 0.33:
        drive = rng.uniform(1.5, 6.0)
        return np.asarray(np.tanh(drive * x) / np.tanh(drive) * peak)
    window = max(1, int(rng.uniform(0.005, 0.05) * rate))
    envelope = np.sqrt(np.maximum(ndimage.uniform_filter1d(x**2, window), 0.0)) + 1e-9
    level_db = 20 * np.log10(envelope)
    threshold, ratio = rng.uniform(-35, -10), rng.uniform(2, 10)
    over = np.maximum(level_db - threshold, 0.0)
    gain_db = -over * (1 - 1 / ratio)
    return np.asarray(x * 10.0 ** (gain_db / 20.0) * peak)


def background(n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    kind = rng.choice(["white", "pink", "brown", "hum"])
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    if kind == "hum":
        t = np.arange(n) / rate
        mains = rng.choice([50.0, 60.0])
        return np.asarray(
            sum(np.sin(2 * np.pi * mains * h * t) / h for h in range(1, 6)) + 0.1 * white
        )
    return coloured(white, kind, rate)


def coloured(white: np.ndarray, kind: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``white`` noise made ``pink`` (1/f power) or ``brown`` (1/f^2), flat below 20 Hz."""
    spectrum = np.fft.rfft(white)
    freqs = np.maximum(np.fft.rfftfreq(len(white), 1 / rate), 20.0)
    spectrum /= freqs ** (0.5 if kind == "pink" else 1.0)
    return np.fft.irfft(spectrum, len(white))


def add_noise(
    samples: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float]
) -> np.ndarray:
    noise = background(len(samples), rng)
    power = np.mean(samples**2) + 1e-12
    noise *= np.sqrt(power / (np.mean(noise**2) + 1e-12) * 10.0 ** (-rng.uniform(*snr_db) / 10))
    return samples + noise


def augment_waveform(
    samples: np.ndarray, rng: np.random.Generator, params: RoomParams | None = None
) -> np.ndarray:
    """One randomly recorded copy of a clip: room, colouring, compression, noise, level."""
    params = params or RoomParams()
    out = samples.astype(np.float64)
    if rng.random() < params.reverb_probability:
        out = reverberate(out, rng, params)
    if rng.random() < params.colour_probability:
        out = colour(out, rng)
    if rng.random() < params.compress_probability:
        out = compress(out, rng)
    if rng.random() < params.noise_probability:
        out = add_noise(out, rng, params.snr_db)
    peak = np.max(np.abs(out)) + 1e-12
    level = 10.0 ** (rng.uniform(*params.level_db) / 20.0)
    # A level change, quantised to 16 bits: quiet recordings lose their low-level detail.
    out = np.round(out / peak * level * 32767.0) / 32767.0
    return np.clip(out, -1.0, 1.0).astype(np.float32)
