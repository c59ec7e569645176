"""The sources of the instrument data set other than the soundfonts.

- ``stk``: the physical models of the Synthesis ToolKit (Debian ``stk``): ``stk-demo`` plays
  a SKINI score (one note per slot, as for FluidSynth) into a WAV file. Clarinet, BlowHole,
  Flute, Saxofony, Brass, Bowed (violin and cello ranges), Plucked and StifKarp (guitar);
  STK has no piano. Vibrato (the modulation wheel) on a third of the notes, and a random
  setting of each model's main control (reed stiffness, bow pressure, lip tension...).
  Its Drummer and Shakers give ``unknown`` clips.
- ``sonic-pi``: the samples of Debian ``sonic-pi-samples`` that are one of the eight
  instruments (``ambi_piano``, the ``guit_*`` ones), resampled to every semitone within an
  octave either way; its drum, percussion and noise samples give ``unknown`` clips.
- ``synth``: this project's own synthesis of each instrument (additive with inharmonic
  partials, Karplus-Strong, harmonic series with formants, breath noise, vibrato), and
  synthesised drums and claps as ``unknown``.
- ``unknown``: noise (white, pink, brown, hum) and espeak-ng speech (Debian ``espeak-ng``),
  which belong to no family of their own: they are dealt round robin to the families above,
  by generator or voice, so that every leave-one-source-out fold holds some out.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ml import log_mel
from ml.training.instruments_room import bandpass, coloured, highpass, peaking
from ml.training.render_instruments import (
    CLIP_SECONDS,
    LEAD_SECONDS,
    PLAIN,
    SAMPLE_RATE,
    SLOT_SECONDS,
    UNKNOWN,
    VIBRATO,
    ClipRecord,
    Instrument,
    Note,
    clip_name,
    is_silent,
    note_plan,
    slice_clips,
    write_clip,
)

logger = logging.getLogger(__name__)

OTHER_SOURCES = ("stk", "sonic-pi", "synth", "unknown")
FAMILIES = ("fluidr3", "musescore", "opl3", "stk", "sonic-pi", "synth")
"""Every leave-one-source-out family; ``unknown`` clips with no source are dealt among them."""
SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
STK_VELOCITIES = (64, 100, 127)
SYNTH_VELOCITIES = (60, 110)

Job = tuple[str, Callable[[], list[ClipRecord]]]


def binaries(sources: Sequence[str]) -> list[tuple[str, str]]:
    """(binary, Debian package) pairs the ``sources`` need; sonic-pi is checked by its path."""
    needed = []
    if "stk" in sources:
        needed.append(("stk-demo", "stk"))
    if "unknown" in sources:
        needed.append(("espeak-ng", "espeak-ng"))
    if "sonic-pi" in sources and not SONIC_PI_DIR.exists():
        needed.append(("/usr/share/sonic-pi/samples/ambi_piano.flac", "sonic-pi-samples"))
    return needed


def jobs(
    source: str, out_dir: Path, instruments: Sequence[Instrument], note_step: int = 1
) -> list[Job]:
    """The rendering jobs of one source, each a (progress name, callable) pair."""
    labels = {instrument.label for instrument in instruments}
    if source == "stk":
        return [
            (
                f"stk/{model}",
                lambda model=model, instrument=instrument, control=control: render_stk(
                    model, instrument, control, out_dir, note_step
                ),
            )
            for model, label, control in STK_MODELS
            for instrument in instruments
            if instrument.label == label
        ] + [("stk/drums", lambda: render_stk_percussion(out_dir))]
    if source == "sonic-pi":
        return [("sonic-pi", lambda: render_sonic_pi(out_dir, labels))]
    if source == "synth":
        return [
            (
                f"synth/{instrument.label}",
                lambda instrument=instrument: render_synth(instrument, out_dir, note_step),
            )
            for instrument in instruments
        ] + [("synth/drums", lambda: render_synth_drums(out_dir))]
    if source == "unknown":
        return [
            ("unknown/noise", lambda: render_noise(out_dir)),
            ("unknown/speech", lambda: render_speech(out_dir)),
        ]
    raise ValueError(f"unknown source {source!r}: one of {', '.join(OTHER_SOURCES)}")


# --- STK ------------------------------------------------------------------------------------

STK_MODELS: tuple[tuple[str, str, int], ...] = (
    # (stk-demo instrument, label, its main timbre control number)
    ("Clarinet", "clarinet", 2),  # reed stiffness
    ("BlowHole", "clarinet", 2),
    ("Flute", "flute", 2),  # jet delay
    ("Saxofony", "saxophone", 2),
    ("Brass", "trumpet", 2),  # lip tension
    ("Bowed", "violin", 2),  # bow pressure
    ("Bowed", "cello", 2),
    ("Plucked", "guitar", 0),
    ("StifKarp", "guitar", 2),  # pickup position
)


def skini_score(notes: Sequence[Note], control: int, seed: int) -> str:
    """One note per slot, with delta times in seconds (SKINI's positive time field)."""
    rng = np.random.default_rng(seed)
    lines = []
    now = 0.0

    def at(time: float, text: str) -> None:
        nonlocal now
        lines.append(text.format(max(time - now, 0.0)))
        now = max(now, time)

    for index, note in enumerate(notes):
        start = LEAD_SECONDS + index * SLOT_SECONDS
        at(start - 0.01, "ControlChange {:.6f} 1 1 0")
        if control:
            value = int(rng.integers(32, 100))
            at(start - 0.005, f"ControlChange {{:.6f}} 1 {control} {value}")
        at(start, f"NoteOn {{:.6f}} 1 {note.note} {note.velocity}")
        if note.expression == VIBRATO:
            for step in range(1, 8):
                at(start + 0.1 * step, f"ControlChange {{:.6f}} 1 1 {min(127, 14 * step)}")
        at(start + note.duration, f"NoteOff {{:.6f}} 1 {note.note} 64")
    at(LEAD_SECONDS + len(notes) * SLOT_SECONDS, "ControlChange {:.6f} 1 1 0")
    return "\n".join(lines) + "\n"


def _stk_plan(instrument: Instrument, note_step: int) -> list[Note]:
    # Vibrato or none: the demo has no pitch bend in its score language we can rely on.
    return [
        Note(n.note, n.velocity, n.duration, VIBRATO if n.expression == VIBRATO else PLAIN)
        for n in note_plan(instrument, STK_VELOCITIES, note_step)
    ]


def run_stk(model: str, score: str) -> np.ndarray:
    import soundfile

    with tempfile.TemporaryDirectory(prefix="stk-") as tmp:
        score_path, wav_path = Path(tmp) / "score.ski", Path(tmp) / "out.wav"
        score_path.write_text(score, encoding="ascii")
        subprocess.run(
            [
                "stk-demo",
                model,
                "-s",
                str(SAMPLE_RATE),
                "-ow",
                str(wav_path),
                "-if",
                str(score_path),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp,
        )
        samples, rate = soundfile.read(str(wav_path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"stk-demo wrote {rate} Hz instead of {SAMPLE_RATE} Hz")
    return samples.mean(axis=1)


def render_stk(
    model: str, instrument: Instrument, control: int, out_dir: Path, note_step: int = 1
) -> list[ClipRecord]:
    notes = _stk_plan(instrument, note_step)
    samples = run_stk(model, skini_score(notes, control, seed=instrument.program + len(model)))
    records = []
    for note, clip in zip(notes, slice_clips(samples, len(notes)), strict=True):
        if is_silent(clip) or not np.isfinite(clip).all():
            continue
        name = clip_name(f"{instrument.label}-{model.lower()}", note)
        records.append(
            write_clip(
                out_dir,
                "stk",
                "stk",
                instrument.label,
                name,
                _peak(clip),
                -1,
                note.note,
                note.velocity,
                note.expression,
            )
        )
    logger.info("stk/%s %s: %d of %d notes", model, instrument.label, len(records), len(notes))
    return records


def render_stk_percussion(out_dir: Path) -> list[ClipRecord]:
    """Drummer (its General MIDI-like kit) and Shakers (its instruments by note)."""
    records = []
    for model, notes in (("Drummer", range(35, 82, 2)), ("Shakers", range(0, 23))):
        plan = [Note(n, v, 0.5) for n in notes for v in (70, 120)]
        samples = run_stk(model, skini_score(plan, 0, seed=1))
        for note, clip in zip(plan, slice_clips(samples, len(plan)), strict=True):
            if is_silent(clip) or not np.isfinite(clip).all():
                continue
            name = clip_name(f"stk-{model.lower()}", note)
            records.append(
                write_clip(
                    out_dir, "stk", "stk", UNKNOWN, name, _peak(clip), -1, note.note, note.velocity
                )
            )
    return records


def _peak(clip: np.ndarray, level: float = 0.7) -> np.ndarray:
    peak = float(np.max(np.abs(clip)))
    return clip * (level / peak) if peak > 0 else clip


# --- sonic-pi -------------------------------------------------------------------------------

SONIC_PI_INSTRUMENTS = {
    "ambi_piano": "piano",
    "guit_harmonics": "guitar",
    "guit_e_fifths": "guitar",
    "guit_em9": "guitar",
    "guit_e_slide": "guitar",
}
SONIC_PI_UNKNOWN_PREFIXES = (
    "bd_",
    "sn_",
    "drum_",
    "perc_",
    "tabla_",
    "elec_snare",
    "elec_hi_snare",
    "elec_lo_snare",
    "elec_mid_snare",
    "elec_filt_snare",
    "elec_soft_kick",
    "elec_hollow_kick",
    "elec_cymbal",
    "elec_fuzz_tom",
    "elec_wood",
    "elec_tick",
    "loop_amen",
    "loop_breakbeat",
    "loop_tabla",
    "loop_compus",
    "loop_perc",
    "loop_industrial",
    "vinyl_",
    "misc_",
    "glitch_perc",
)
SEMITONES = range(-12, 13)


def _read(path: Path) -> np.ndarray:
    """A sound file as mono float32 at the data set's rate (numpy and soxr: no librosa)."""
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return log_mel.resample(log_mel.to_mono(samples), rate, SAMPLE_RATE)


def _window(samples: np.ndarray, start: int = 0) -> np.ndarray:
    return log_mel.fit_length(samples[start:], int(CLIP_SECONDS * SAMPLE_RATE))


def _repitch(samples: np.ndarray, semitones: int) -> np.ndarray:
    """Played faster or slower, as a sampler does: pitch and length change together."""
    factor = 2.0 ** (semitones / 12.0)
    positions = np.arange(0, len(samples) - 1, factor)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def render_sonic_pi(out_dir: Path, labels: set[str]) -> list[ClipRecord]:
    records = []
    for stem, label in SONIC_PI_INSTRUMENTS.items():
        if label not in labels:
            continue
        samples = _read(SONIC_PI_DIR / f"{stem}.flac")
        onset = int(np.argmax(np.abs(samples) > 0.05 * np.abs(samples).max()))
        for shift in SEMITONES:
            for offset_s in (0.0, 1.0):
                start = onset + int(offset_s * SAMPLE_RATE)
                clip = _window(_repitch(samples[max(start - 200, 0) :], shift))
                if is_silent(clip):
                    continue
                name = f"{stem}-s{shift + 12:02d}-o{int(offset_s)}.wav"
                records.append(
                    write_clip(
                        out_dir, "sonic-pi", "sonic-pi", label, name, _peak(clip), -1, 60 + shift
                    )
                )
    for path in sorted(SONIC_PI_DIR.glob("*.flac")):
        if not path.stem.startswith(SONIC_PI_UNKNOWN_PREFIXES):
            continue
        samples = _read(path)
        starts = range(0, max(len(samples) - SAMPLE_RATE, 1), 2 * SAMPLE_RATE)
        for index, start in enumerate(list(starts)[:4]):
            clip = _window(samples, start)
            if is_silent(clip):
                continue
            name = f"{path.stem}-{index}.wav"
            records.append(write_clip(out_dir, "sonic-pi", "sonic-pi", UNKNOWN, name, _peak(clip)))
    return records


# --- own synthesis --------------------------------------------------------------------------


def _hz(note: float) -> float:
    return float(440.0 * 2.0 ** ((note - 69) / 12.0))


def _envelope(
    n: int, attack: float, duration: float, release: float, decay: float = 0.0
) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    env = np.minimum(t / max(attack, 1e-3), 1.0)
    if decay:
        env = env * np.exp(-np.maximum(t - attack, 0) / decay)
    off = t > duration
    env[off] *= np.exp(-(t[off] - duration) / release)
    return env


def _additive(
    f0: float,
    amplitudes: np.ndarray,
    n: int,
    rng: np.random.Generator,
    vibrato: float = 0.0,
    decays: np.ndarray | None = None,
    stretch: float = 0.0,
) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    rate = rng.uniform(4.5, 6.5)
    pitch = 1.0 + vibrato * np.sin(2 * np.pi * rate * t) * np.minimum(t / 0.3, 1.0)
    phase = 2 * np.pi * f0 * np.cumsum(pitch) / SAMPLE_RATE
    out = np.zeros(n)
    for k, amplitude in enumerate(amplitudes, start=1):
        partial = k * np.sqrt(1.0 + stretch * k * k)
        if partial * f0 * pitch.max() >= SAMPLE_RATE / 2 - 500:
            break
        wave = amplitude * np.sin(partial * phase + rng.uniform(0, 2 * np.pi))
        if decays is not None:
            wave *= np.exp(-t / decays[k - 1])
        out += wave
    return out


def _formants(signal: np.ndarray, centres: Sequence[float], gain_db: float = 9.0) -> np.ndarray:

    out = signal
    for centre in centres:
        out = peaking(out, centre, gain_db, q=2.0)
    return out


def _breath(n: int, rng: np.random.Generator, centre: float, level: float) -> np.ndarray:

    return level * bandpass(rng.standard_normal(n), centre, q=1.5)


def synth_note(
    label: str, note: int, velocity: int, duration: float, vibrato: bool, rng: np.random.Generator
) -> np.ndarray:
    """One note of ``label``, 2 s from its onset: a crude model of each instrument's sound."""
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    f0, loud = _hz(note), velocity / 127.0
    k = np.arange(1, 41, dtype=np.float64)
    depth = rng.uniform(0.003, 0.008) if vibrato else 0.0
    if label == "piano":
        amplitudes = (1.0 / k**1.3) * np.exp(-k * (1.2 - loud) * rng.uniform(0.1, 0.3))
        decays = rng.uniform(1.0, 3.0) * (261.0 / f0) ** 0.4 / k**0.7
        tone = _additive(f0, amplitudes, n, rng, 0.0, decays, stretch=rng.uniform(1e-4, 6e-4))
        tone *= _envelope(n, 0.003, duration, 0.15)
        tone[:300] += 0.3 * loud * rng.standard_normal(300) * np.linspace(1, 0, 300)
        return tone
    if label == "guitar":
        return _karplus_strong(f0, n, loud, duration, rng)
    if label in ("violin", "cello"):
        amplitudes = 1.0 / k ** rng.uniform(0.9, 1.3)
        tone = _additive(f0, amplitudes, n, rng, depth or rng.uniform(0.002, 0.006))
        body = (400, 1100, 2800) if label == "violin" else (200, 550, 1500)
        tone = _formants(tone, [c * rng.uniform(0.85, 1.15) for c in body])
        tone += _breath(n, rng, 3000.0, 0.02) * rng.uniform(0.5, 2.0)
        return tone * _envelope(n, rng.uniform(0.05, 0.2), duration, 0.2)
    if label == "trumpet":
        brightness = 0.5 + loud
        amplitudes = np.exp(-k / (2.5 * brightness)) * (k <= 20)
        tone = np.tanh(1.5 * _additive(f0, amplitudes, n, rng, depth))
        tone = _formants(tone, [1200 * rng.uniform(0.9, 1.1), 2500])
        return tone * _envelope(n, rng.uniform(0.02, 0.06), duration, 0.08)
    if label == "saxophone":
        amplitudes = 1.0 / k ** rng.uniform(0.7, 1.0)
        tone = _additive(f0, amplitudes, n, rng, depth)
        tone = _formants(tone, [500 * rng.uniform(0.9, 1.1), 1500, 2600], gain_db=8.0)
        tone += _breath(n, rng, 2000.0, 0.04)
        return tone * _envelope(n, rng.uniform(0.03, 0.08), duration, 0.1)
    if label == "clarinet":
        odd = np.where(k % 2 == 1, 1.0, 0.08 if note < 70 else 0.4)
        amplitudes = odd / k ** rng.uniform(0.9, 1.2)
        tone = _additive(f0, amplitudes, n, rng, depth * 0.5)
        tone += _breath(n, rng, 1500.0, 0.015)
        return tone * _envelope(n, rng.uniform(0.03, 0.07), duration, 0.06)
    if label == "flute":
        amplitudes = np.array([1.0, rng.uniform(0.1, 0.5), rng.uniform(0.05, 0.2), 0.05, 0.02])
        tone = _additive(f0, amplitudes, n, rng, depth or rng.uniform(0.002, 0.006))
        tone += _breath(n, rng, min(2 * f0, 8000.0), rng.uniform(0.05, 0.15))
        return tone * _envelope(n, rng.uniform(0.04, 0.1), duration, 0.08)
    raise ValueError(f"no synthesis for {label!r}")


def _karplus_strong(
    f0: float, n: int, loud: float, duration: float, rng: np.random.Generator
) -> np.ndarray:
    period = max(2, int(round(SAMPLE_RATE / f0)))
    burst = rng.uniform(-1, 1, period)
    pick = rng.uniform(0.1, 0.4)  # pluck position: a comb on the initial shape
    shift = max(1, int(pick * period))
    burst = burst - np.roll(burst, shift)
    damping = 0.5 - 0.003 * (1 - loud)
    out = np.zeros(n)
    buffer = burst.copy()
    for start in range(0, n, period):
        stop = min(start + period, n)
        out[start:stop] = buffer[: stop - start]
        buffer = damping * (buffer + np.roll(buffer, -1)) * rng.uniform(0.996, 0.9995)
    return out * _envelope(n, 0.001, duration + 0.5, 0.1)


def render_synth(instrument: Instrument, out_dir: Path, note_step: int = 1) -> list[ClipRecord]:
    rng = np.random.default_rng(1000 + instrument.program)
    records = []
    for plan in note_plan(instrument, SYNTH_VELOCITIES, note_step):
        expression = VIBRATO if plan.expression == VIBRATO else PLAIN
        tone = synth_note(
            instrument.label, plan.note, plan.velocity, plan.duration, expression == VIBRATO, rng
        )
        onset = int(rng.integers(0, int(0.05 * SAMPLE_RATE)))
        clip = _window(np.concatenate([np.zeros(onset), tone]).astype(np.float32))
        name = clip_name(instrument.label, plan.note, plan.velocity, expression)
        records.append(
            write_clip(
                out_dir,
                "synth",
                "synth",
                instrument.label,
                name,
                _peak(clip, 0.3 + 0.5 * plan.velocity / 127),
                -1,
                plan.note,
                plan.velocity,
                expression,
            )
        )
    return records


def synth_drum(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A kick, snare, hi-hat, tom, clap or a hand-clap pattern, 2 s long."""

    n = int(CLIP_SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    noise = rng.standard_normal(n)
    if kind == "kick":
        f = rng.uniform(45, 70) * (1 + 3 * np.exp(-t / 0.03))
        return np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * np.exp(-t / rng.uniform(0.1, 0.4))
    if kind == "tom":
        f = rng.uniform(80, 250) * (1 + 0.5 * np.exp(-t / 0.05))
        return np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * np.exp(-t / rng.uniform(0.15, 0.5))
    if kind == "snare":
        body = np.sin(2 * np.pi * rng.uniform(150, 250) * t) * np.exp(-t / 0.05)
        return body + bandpass(noise, rng.uniform(2000, 5000), 0.7) * np.exp(
            -t / rng.uniform(0.08, 0.25)
        )
    if kind == "hihat":
        return highpass(noise, rng.uniform(6000, 9000)) * np.exp(-t / rng.uniform(0.03, 0.4))
    # claps: a few hands at random times, each a burst of bandpassed noise
    out = np.zeros(n)
    hits = 1 if kind == "clap" else int(rng.integers(3, 9))
    for start in np.sort(rng.uniform(0.0, 1.6, hits)) if hits > 1 else [rng.uniform(0, 0.2)]:
        begin = int(start * SAMPLE_RATE)
        length = int(0.25 * SAMPLE_RATE)
        piece = bandpass(rng.standard_normal(length), rng.uniform(900, 2500), 1.2)
        env = np.exp(-np.arange(length) / SAMPLE_RATE / rng.uniform(0.02, 0.08))
        stop = min(begin + length, n)
        out[begin:stop] += (piece * env)[: stop - begin]
    return out


DRUM_KINDS = ("kick", "tom", "snare", "hihat", "clap", "claps")


def render_synth_drums(out_dir: Path, per_kind: int = 20) -> list[ClipRecord]:
    rng = np.random.default_rng(7)
    records = []
    for kind in DRUM_KINDS:
        for index in range(per_kind):
            clip = synth_drum(kind, rng).astype(np.float32)
            if kind != "claps" and rng.random() < 0.5:  # a pattern of hits, not just one
                gap = int(rng.uniform(0.2, 0.6) * SAMPLE_RATE)
                clip = clip + np.concatenate([np.zeros(gap), clip[:-gap]]) * rng.uniform(0.5, 1)
            name = f"{kind}-{index:02d}.wav"
            records.append(
                write_clip(
                    out_dir, "synth", "synth", UNKNOWN, name, _peak(clip, rng.uniform(0.2, 0.9))
                )
            )
    return records


# --- noise and speech (dealt to the families) ----------------------------------------------


def noise(kind: str, rng: np.random.Generator) -> np.ndarray:
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    if kind in ("pink", "brown"):
        return coloured(white, kind)
    if kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        mains = rng.choice([50.0, 60.0])
        tone = sum(rng.uniform(0.1, 1) / h * np.sin(2 * np.pi * mains * h * t) for h in range(1, 8))
        return tone + 0.05 * white
    # "bursts": noise switched on and off, like wind, traffic or a fan
    gate = np.repeat(rng.random(20) > 0.5, n // 20 + 1)[:n]
    return white * (0.1 + gate)


NOISE_KINDS = ("white", "pink", "brown", "hum", "bursts")


def render_noise(out_dir: Path, per_kind: int = 24) -> list[ClipRecord]:
    rng = np.random.default_rng(11)
    records = []
    for kind in NOISE_KINDS:
        for index in range(per_kind):
            clip = _peak(noise(kind, rng).astype(np.float32), rng.uniform(0.05, 0.9))
            family = FAMILIES[index % len(FAMILIES)]
            records.append(
                write_clip(out_dir, "noise", family, UNKNOWN, f"{kind}-{index:02d}.wav", clip)
            )
    return records


SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please send the report before noon tomorrow.",
    "One, two, three, four, testing the microphone.",
    "Can you hear me now? I think the line is bad.",
    "Welcome to the concert hall, please take your seats.",
    "The weather will be sunny with a light breeze.",
)
VOICES = ("en", "en-us", "en-gb-x-rp", "fr", "de", "es", "it", "nl", "pt", "sv", "pl", "ru")


def espeak(text: str, voice: str, speed: int, pitch: int, variant: str) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                f"{voice}+{variant}",
                "-s",
                str(speed),
                "-p",
                str(pitch),
                "-w",
                str(path),
                text,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return _read(path)


def render_speech(out_dir: Path) -> list[ClipRecord]:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is missing (apt-get install espeak-ng)")
    rng = np.random.default_rng(13)
    variants = ("m1", "m3", "f1", "f2", "f4", "croak", "whisper", "klatt")
    records = []
    for v_index, voice in enumerate(VOICES):
        family = FAMILIES[v_index % len(FAMILIES)]
        for s_index, text in enumerate(SENTENCES):
            variant = variants[(v_index + s_index) % len(variants)]
            speech = espeak(
                text, voice, int(rng.integers(120, 220)), int(rng.integers(20, 80)), variant
            )
            for part in range(2):
                clip = _window(speech, part * int(CLIP_SECONDS * SAMPLE_RATE))
                if is_silent(clip):
                    continue
                name = f"{voice}-{s_index}-{variant}-{part}.wav"
                records.append(
                    write_clip(
                        out_dir, "speech", family, UNKNOWN, name, _peak(clip, rng.uniform(0.1, 0.9))
                    )
                )
    return records
