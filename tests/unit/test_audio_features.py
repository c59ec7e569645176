"""Feature functions on synthetic signals: shapes, invariances, and train/serve parity."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
import soundfile

from ml import features
from ml.audio import decode_audio
from ml.training.instruments_augment import AugmentParams, augment_log_mel

RATE = 22_050
CLIP = 2.0
PARAMS = features.FeatureParams()
FRAMES = 1 + int(CLIP * RATE) // PARAMS.hop_length


def tone(seconds: float, rate: int = RATE, freq: float = 440.0, shape: str = "sine") -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * freq * t)
    if shape == "square":
        wave = np.sign(wave)
    elif shape == "harmonic":  # band-limited: below 5 kHz at every sample rate tested
        wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 12))
    return (0.5 * wave * np.exp(-t)).astype(np.float32)


def noise(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(
        np.float32
    )


def log_mel(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    return features.log_mel(samples, rate, RATE, CLIP, PARAMS)


def test_to_mono_averages_channels() -> None:
    stereo = np.stack([np.ones(4), np.zeros(4)], axis=1)

    np.testing.assert_allclose(features.to_mono(stereo), np.full(4, 0.5))
    assert features.to_mono(np.ones(3)).dtype == np.float32
    with pytest.raises(ValueError):
        features.to_mono(np.ones((2, 2, 2)))


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
def test_resample_to_the_model_rate(rate: int) -> None:
    resampled = features.resample(tone(1.0, rate), rate, RATE)

    assert resampled.dtype == np.float32
    assert abs(len(resampled) - RATE) <= 1


def test_fit_length_pads_the_end_and_crops_the_end() -> None:
    samples = np.arange(1, 6, dtype=np.float32)

    np.testing.assert_array_equal(features.fit_length(samples, 7), [1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(features.fit_length(samples, 3), [1, 2, 3])


def test_short_clip_is_one_padded_window() -> None:
    windows = features.clip_windows(tone(0.5), RATE, CLIP, PARAMS)

    assert windows.shape == (1, int(CLIP * RATE))
    assert not windows[0, int(0.5 * RATE) :].any()


def test_long_clip_is_cut_into_windows_and_quiet_ones_dropped() -> None:
    loud = np.tile(tone(1.0), 5)
    quiet = np.zeros(3 * RATE, dtype=np.float32)

    windows = features.clip_windows(np.concatenate([loud, quiet]), RATE, CLIP, PARAMS)

    # 8 s at a 1 s hop: windows start at 0..6 s; those starting at 5 and 6 s are silent.
    assert windows.shape == (5, int(CLIP * RATE))


def test_window_count_is_capped_to_the_loudest() -> None:
    params = features.FeatureParams(max_windows=3)
    samples = np.concatenate([tone(2.0) * gain for gain in (0.2, 0.4, 1.0, 0.8, 0.6)])

    windows = features.clip_windows(samples, RATE, CLIP, params)

    assert len(windows) == 3


@pytest.mark.parametrize(
    "signal",
    [tone(2.0), tone(2.0, shape="square"), noise(2.0), tone(0.3), tone(5.0, freq=880.0)],
    ids=["sine", "square", "noise", "short", "long"],
)
def test_log_mel_shape_and_range(signal: np.ndarray) -> None:
    mel = log_mel(signal)

    assert mel.dtype == np.float32
    assert mel.shape[1:] == (PARAMS.n_mels, FRAMES)
    assert np.isfinite(mel).all()
    assert mel.min() >= -1.0 and mel.max() == pytest.approx(1.0)


def test_log_mel_ignores_the_recording_level() -> None:
    signal = tone(2.0, shape="square")

    np.testing.assert_allclose(log_mel(signal), log_mel(signal * 0.01), atol=1e-4)


def test_silence_maps_to_the_floor() -> None:
    mel = log_mel(np.zeros(RATE, dtype=np.float32))

    assert np.isfinite(mel).all()
    np.testing.assert_array_equal(mel, -1.0)


def test_pitch_lands_in_the_right_mel_band() -> None:
    mel = log_mel(tone(2.0, freq=440.0))[0]
    centres = librosa.mel_frequencies(n_mels=PARAMS.n_mels + 2, fmin=PARAMS.fmin, fmax=PARAMS.fmax)[
        1:-1
    ]

    assert abs(centres[int(np.argmax(mel.mean(axis=1)))] - 440.0) < 60.0


def test_square_and_sine_differ_in_harmonics() -> None:
    sine_mel = log_mel(tone(2.0))
    square_mel = log_mel(tone(2.0, shape="square"))

    # Upper bands: odd harmonics of the square wave stand far above the sine's leakage.
    assert square_mel[0, 40:].mean() > sine_mel[0, 40:].mean() + 0.2


@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
def test_features_hardly_depend_on_the_input_rate(rate: int) -> None:
    reference = log_mel(tone(2.0, shape="harmonic"))
    other = log_mel(tone(2.0, rate, shape="harmonic"), rate)

    assert np.abs(reference - other).mean() < 0.005


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", None), ("OGG", "VORBIS")])
def test_decoded_stereo_files_give_the_same_features(fmt: str, subtype: str | None) -> None:
    signal = tone(2.0, 44_100, shape="harmonic") / 4
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([signal, signal], axis=1), 44_100, format=fmt, subtype=subtype)

    clip = decode_audio(buffer.getvalue(), max_seconds=10)

    assert np.abs(log_mel(clip.samples, clip.sample_rate) - log_mel(signal, 44_100)).mean() < 0.05


def test_training_path_equals_serving_path() -> None:
    # Training precomputes mel power of peak-normalised 2 s clips; serving goes end to end.
    signal = noise(2.0) + tone(2.0, shape="square")
    power = features.mel_power(features.peak_normalise(signal[np.newaxis]), RATE, PARAMS)

    np.testing.assert_allclose(
        features.log_mel_from_power(power, PARAMS.top_db), log_mel(signal), atol=1e-6
    )


def test_mfcc_statistics_are_finite_and_level_free() -> None:
    signal = tone(2.0, shape="square") + noise(2.0)

    stats = features.mfcc_statistics(signal, RATE, RATE, CLIP, PARAMS)
    quieter = features.mfcc_statistics(signal * 0.05, RATE, RATE, CLIP, PARAMS)

    assert stats.shape == (1, 3 * PARAMS.n_mfcc + 6)
    assert np.isfinite(stats).all()
    np.testing.assert_allclose(stats, quieter, rtol=1e-3, atol=1e-3)


def test_mfcc_statistics_of_silence_are_finite() -> None:
    stats = features.mfcc_statistics(np.zeros(RATE, np.float32), RATE, RATE, CLIP, PARAMS)

    assert np.isfinite(stats).all()


def test_params_round_trip_through_the_manifest() -> None:
    stored = {**PARAMS.as_manifest(), "added_later": 1}

    assert features.FeatureParams.from_manifest(stored) == PARAMS


def test_augmentation_keeps_shape_and_range_and_varies() -> None:
    signals = np.stack([tone(2.0), tone(2.0, shape="square"), noise(2.0)])
    power = features.mel_power(features.peak_normalise(signals), RATE, PARAMS)
    rng = np.random.default_rng(0)

    first = augment_log_mel(power, rng, AugmentParams(), PARAMS.top_db)
    second = augment_log_mel(power, rng, AugmentParams(), PARAMS.top_db)

    assert first.shape == power.shape
    assert np.isfinite(first).all() and first.min() >= -1.0 and first.max() <= 1.0
    assert not np.allclose(first, second)
