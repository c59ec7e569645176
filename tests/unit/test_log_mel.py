"""The serving log-mel (numpy, soxr, a stored filterbank) against librosa's, the training one."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile

from ml import features, log_mel
from tests.helpers import MODELS_DIR, varied_signals

RATE = 22_050
CLIP = 2.0
PARAMS = log_mel.FeatureParams()
FILTERBANK = features.mel_filterbank(RATE, PARAMS)
CLIPS = sorted((MODELS_DIR / "_evaluation" / "instrument-recognition").glob("*.flac"))


@pytest.mark.parametrize("path", CLIPS, ids=[path.stem for path in CLIPS])
def test_the_evaluation_clips_have_librosas_log_mel(path: Path) -> None:
    samples, rate = soundfile.read(path, dtype="float32")
    expected = features.log_mel(samples, rate, RATE, CLIP, PARAMS)
    actual = log_mel.log_mel(samples, rate, RATE, CLIP, PARAMS, FILTERBANK)
    assert actual.shape == expected.shape and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=0, atol=log_mel.LIBROSA_TOLERANCE)


@pytest.mark.parametrize(
    ("name", "samples", "rate"), varied_signals(3.0), ids=lambda v: str(v)[:20]
)
def test_other_rates_and_signals_have_librosas_log_mel(
    name: str, samples: np.ndarray, rate: int
) -> None:
    expected = features.log_mel(samples, rate, RATE, CLIP, PARAMS)
    actual = log_mel.log_mel(samples, rate, RATE, CLIP, PARAMS, FILTERBANK)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=log_mel.LIBROSA_TOLERANCE)


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
def test_resampling_is_librosas_to_the_sample(rate: int) -> None:
    samples = np.random.default_rng(1).standard_normal(rate + 17).astype(np.float32)
    expected = librosa.resample(samples, orig_sr=rate, target_sr=RATE, res_type="soxr_hq")
    np.testing.assert_array_equal(log_mel.resample(samples, rate, RATE), expected)
