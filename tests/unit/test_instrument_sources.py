"""The instrument data set's own pieces: note plans, scores, synthesis, recorded copies."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from ml.training.instruments_room import augment_waveform, impulse_response
from ml.training.render_instruments import (
    BEND,
    INSTRUMENT_LABELS,
    INSTRUMENTS,
    LABELS,
    SAMPLE_RATE,
    UNKNOWN,
    VIBRATO,
    Note,
    note_plan,
    write_midi,
)
from ml.training.render_sources import (
    DRUM_KINDS,
    NOISE_KINDS,
    noise,
    skini_score,
    synth_drum,
    synth_note,
)

CLIP = int(2.0 * SAMPLE_RATE)


def test_the_labels_are_the_eight_instruments_then_unknown() -> None:
    assert LABELS == (*INSTRUMENT_LABELS, UNKNOWN)
    assert len(INSTRUMENT_LABELS) == 8


def test_every_semitone_and_velocity_is_planned_with_some_expression() -> None:
    flute = next(i for i in INSTRUMENTS if i.label == "flute")
    plan = note_plan(flute)
    assert {n.note for n in plan} == set(range(flute.low, flute.high + 1))
    assert len(plan) == 3 * (flute.high - flute.low + 1)
    counts = {e: sum(n.expression == e for n in plan) for e in ("", VIBRATO, BEND)}
    assert min(counts.values()) >= len(plan) // 4


def test_the_midi_file_carries_vibrato_and_bends(tmp_path: Path) -> None:
    notes = [Note(60, 80, 1.0, VIBRATO), Note(62, 80, 1.0, BEND), Note(64, 80, 1.0)]
    write_midi(tmp_path / "a.mid", 40, notes)
    messages = list(mido.MidiFile(str(tmp_path / "a.mid")))
    modulation = [m for m in messages if m.type == "control_change" and m.control == 1]
    bends = [m for m in messages if m.type == "pitchwheel"]
    assert max(m.value for m in modulation) > 100 and modulation[-1].value == 0
    assert abs(bends[0].pitch) >= 2048 and bends[-1].pitch == 0
    assert [m.note for m in messages if m.type == "note_on"] == [60, 62, 64]


def test_the_skini_score_uses_delta_times_and_vibrato() -> None:
    score = skini_score([Note(60, 100, 1.0, VIBRATO), Note(61, 100, 1.0)], control=2, seed=0)
    lines = [line.split() for line in score.splitlines()]
    assert {line[0] for line in lines} == {"ControlChange", "NoteOn", "NoteOff"}
    assert all(float(line[1]) >= 0 for line in lines)
    total = sum(float(line[1]) for line in lines)
    assert total == pytest.approx(0.5 + 2 * 3.5, abs=1e-3)
    assert [line[3] for line in lines if line[0] == "NoteOn"] == ["60", "61"]


@pytest.mark.parametrize("label", INSTRUMENT_LABELS)
def test_each_instrument_is_synthesised_at_its_pitch(label: str) -> None:
    instrument = next(i for i in INSTRUMENTS if i.label == label)
    note = (instrument.low + instrument.high) // 2
    samples = synth_note(label, note, 90, 1.5, True, np.random.default_rng(0))
    assert samples.shape == (CLIP,) and np.isfinite(samples).all()
    assert np.sqrt(np.mean(samples[: SAMPLE_RATE // 2] ** 2)) > 1e-3
    # The strongest low partial is the fundamental or one of its first harmonics.
    spectrum = np.abs(np.fft.rfft(samples[: SAMPLE_RATE // 2] * np.hanning(SAMPLE_RATE // 2)))
    freqs = np.fft.rfftfreq(SAMPLE_RATE // 2, 1 / SAMPLE_RATE)
    f0 = 440.0 * 2 ** ((note - 69) / 12)
    peak = freqs[np.argmax(np.where(freqs > 0.8 * f0, spectrum, 0))]
    ratio = peak / f0
    assert abs(ratio - round(ratio)) < 0.08 and 1 <= round(ratio) <= 6


@pytest.mark.parametrize("kind", DRUM_KINDS)
def test_drums_and_claps_are_synthesised(kind: str) -> None:
    samples = synth_drum(kind, np.random.default_rng(1))
    assert samples.shape == (CLIP,) and np.isfinite(samples).all() and np.abs(samples).max() > 0


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_of_every_kind(kind: str) -> None:
    samples = noise(kind, np.random.default_rng(2))
    assert samples.shape == (CLIP,) and samples.std() > 0


def test_a_synthetic_room_decays() -> None:
    response = impulse_response(np.random.default_rng(3), rt60=0.5)
    energy = response**2
    tenth = len(energy) // 10
    assert energy[:tenth].sum() > 100 * energy[-tenth:].sum()
    assert energy.sum() == pytest.approx(1.0, rel=0.05)


def test_a_recorded_copy_keeps_length_and_range_and_differs() -> None:
    clip = synth_note("violin", 67, 90, 1.5, False, np.random.default_rng(4)).astype(np.float32)
    copies = [augment_waveform(clip, np.random.default_rng(seed)) for seed in range(6)]
    for copy in copies:
        assert copy.shape == clip.shape and copy.dtype == np.float32
        assert np.isfinite(copy).all() and np.abs(copy).max() <= 1.0
        assert np.corrcoef(copy, clip)[0, 1] < 0.9999
    # Deterministic for a seed: the feature cache can be rebuilt identically.
    np.testing.assert_array_equal(copies[0], augment_waveform(clip, np.random.default_rng(0)))
