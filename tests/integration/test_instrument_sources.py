"""Every kind of source of the instrument data set, rendered small: soundfonts (with their
percussion kit), STK, sonic-pi, own synthesis, noise and speech; then its feature cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ml.features import FeatureParams
from ml.training.instruments_cache import load_features
from ml.training.render_data import render_all
from ml.training.render_instruments import (
    INSTRUMENTS,
    SAMPLE_RATE,
    SOUNDFONTS,
    UNKNOWN,
    read_index,
)
from ml.training.render_sources import FAMILIES, SONIC_PI_DIR

OPL3 = SOUNDFONTS["opl3"]
pytestmark = pytest.mark.skipif(
    shutil.which("fluidsynth") is None
    or shutil.which("stk-demo") is None
    or shutil.which("espeak-ng") is None
    or not OPL3.path.exists()
    or not SONIC_PI_DIR.exists(),
    reason="needs fluidsynth, opl3-soundfont, stk, sonic-pi-samples and espeak-ng (Debian)",
)

LABELS = ("piano", "guitar", "clarinet")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sources")
    instruments = [i for i in INSTRUMENTS if i.label in LABELS]
    render_all(
        out,
        [OPL3],
        instruments,
        velocities=(80,),
        note_step=12,
        drums=True,
        others=("stk", "sonic-pi", "synth", "unknown"),
    )
    return out


def test_every_source_is_rendered_into_its_family(rendered: Path) -> None:
    records = read_index(rendered)
    sources = {r.soundfont: r.source_family for r in records if r.label != UNKNOWN}
    assert sources == {"opl3": "opl3", "stk": "stk", "sonic-pi": "sonic-pi", "synth": "synth"}
    # STK has no piano; sonic-pi has a piano and guitars only.
    assert {r.label for r in records if r.soundfont == "stk"} == {"guitar", "clarinet", UNKNOWN}
    assert {r.label for r in records if r.soundfont == "sonic-pi"} == {"piano", "guitar", UNKNOWN}
    unknown = {r.soundfont for r in records if r.label == UNKNOWN}
    assert unknown == {"opl3", "stk", "sonic-pi", "synth", "noise", "speech"}
    # Noise and speech have no family of their own: every fold holds some out.
    dealt = {r.source_family for r in records if r.soundfont in ("noise", "speech")}
    assert dealt == set(FAMILIES)


def test_clips_are_mono_two_seconds_and_not_silent(rendered: Path) -> None:
    records = read_index(rendered)
    for source in ("opl3", "stk", "sonic-pi", "synth", "noise", "speech"):
        record = next(r for r in records if r.soundfont == source)
        samples, rate = soundfile.read(str(rendered / record.file), always_2d=True)
        assert (rate, samples.shape) == (SAMPLE_RATE, (2 * SAMPLE_RATE, 1)), record.file
        assert np.sqrt(np.mean(samples**2)) > 1e-3, record.file


def test_the_feature_cache_holds_clean_and_recorded_copies(rendered: Path) -> None:
    records = read_index(rendered)[:40]
    params = FeatureParams()
    cache = load_features(rendered, records, params, copies=2, seed=0)
    frames = 1 + 2 * SAMPLE_RATE // params.hop_length
    assert cache.power.shape == (40, 2, params.n_mels, frames)
    assert not np.allclose(cache.power[:, 0], cache.power[:, 1])
    again = load_features(rendered, records, params, copies=2, seed=0)
    np.testing.assert_array_equal(again.power, cache.power)
    assert len(list((rendered / "cache").glob("features-*.npz"))) == 1
