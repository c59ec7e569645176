"""Render single-note instrument clips from General MIDI soundfonts with FluidSynth.

One MIDI file per instrument and soundfont holds every note of the instrument's range at
several velocities, one note per fixed-length slot; FluidSynth renders it once (starting it
per note would reload the soundfont each time) and the result is sliced into clips. Some
notes get vibrato (modulation wheel, CC1) or a pitch bend into the note.

``ml.training.render_data`` (``make data``) renders these with every other source of the
data set (``render_sources``): the STK physical models, the sonic-pi samples, this project's
own synthesis, and the clips of the ``unknown`` class (GM percussion, noise, espeak-ng
speech, synthesised drums).

Writes ``<out>/<source>/<label>/<label>-n<note>-v<velocity>[-<expression>].wav`` (mono,
16-bit) and ``<out>/index.csv`` (file, label, program, note, velocity, soundfont, family,
expression): ``soundfont`` is the source's key, ``family`` groups near-identical sources
(the leave-one-source-out folds).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 22_050
CLIP_SECONDS = 2.0
# Each note gets its own slot, long enough for the release and reverb tail to die out
# before the next note starts, so that no clip hears its neighbour.
SLOT_SECONDS = 3.5
LEAD_SECONDS = 0.5
VELOCITIES = (45, 80, 115)
# A clip whose RMS is below this (about -70 dBFS) is a note the soundfont does not have.
SILENCE_RMS = 3e-4

TICKS_PER_BEAT = 480
TEMPO_US_PER_BEAT = 500_000  # 120 bpm: one beat is 0.5 s
TICKS_PER_SECOND = TICKS_PER_BEAT * 1_000_000 // TEMPO_US_PER_BEAT

UNKNOWN = "unknown"
"""The label of a clip with no instrument of the eight in it (drums, noise, speech)."""


@dataclass(frozen=True)
class Instrument:
    label: str
    program: int
    low: int
    high: int
    """Lowest and highest playable MIDI note (concert pitch), inclusive."""


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("piano", 0, 21, 108),
    Instrument("guitar", 24, 40, 83),
    Instrument("violin", 40, 55, 100),
    Instrument("cello", 42, 36, 76),
    Instrument("trumpet", 56, 52, 82),
    Instrument("saxophone", 65, 49, 80),
    Instrument("clarinet", 71, 50, 91),
    Instrument("flute", 73, 60, 96),
)
INSTRUMENT_LABELS: tuple[str, ...] = tuple(instrument.label for instrument in INSTRUMENTS)
LABELS: tuple[str, ...] = (*INSTRUMENT_LABELS, UNKNOWN)


@dataclass(frozen=True)
class Soundfont:
    key: str
    path: Path
    package: str
    family: str
    """Sources of one family share their samples: a fold holds them out together."""


def _soundfonts(*items: Soundfont) -> dict[str, Soundfont]:
    return {item.key: item for item in items}


SOUNDFONTS: dict[str, Soundfont] = _soundfonts(
    Soundfont(
        "fluidr3", Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm", "fluidr3"
    ),
    Soundfont(
        "fluidr3-gs", Path("/usr/share/sounds/sf2/FluidR3_GS.sf2"), "fluid-soundfont-gs", "fluidr3"
    ),
    Soundfont(
        "fluidr3-mono",
        Path("/usr/share/sounds/sf3/FluidR3Mono_GM.sf3"),
        "fluidr3mono-gm-soundfont",
        "fluidr3",
    ),
    Soundfont(
        "musescore",
        Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
        "musescore-general-soundfont-small",
        "musescore",
    ),
    Soundfont(
        "musescore-full",
        Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3"),
        "musescore-general-soundfont",
        "musescore",
    ),
    Soundfont(
        "musescore-lossless",
        Path("/usr/share/sounds/sf2/MuseScore_General_Full.sf2"),
        "musescore-general-soundfont-lossless",
        "musescore",
    ),
    Soundfont("opl3", Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"), "opl3-soundfont", "opl3"),
)
ALL_SOUNDFONTS: tuple[Soundfont, ...] = tuple(SOUNDFONTS.values())
APT_PACKAGES: tuple[str, ...] = (
    "fluidsynth",
    *(sf.package for sf in ALL_SOUNDFONTS),
    "stk",
    "sonic-pi-samples",
    "espeak-ng",
)
# GM percussion (channel 10, 0-based 9): the kit's notes, rendered as ``unknown`` clips.
DRUM_CHANNEL = 9
DRUM_NOTES = range(35, 82)
DRUM_VELOCITIES = (60, 110)


# Expressions a note may get, where the source allows: none, vibrato, a bend into the note.
PLAIN, VIBRATO, BEND = "", "vibrato", "bend"
EXPRESSIONS = (PLAIN, VIBRATO, BEND)


@dataclass(frozen=True)
class Note:
    note: int
    velocity: int
    duration: float
    """Seconds the key is held; varied so clips hold both decays and sustained notes."""
    expression: str = PLAIN


@dataclass(frozen=True)
class ClipRecord:
    file: str
    label: str
    program: int
    note: int
    velocity: int
    soundfont: str
    """The source's key (a soundfont, ``stk``, ``sonic-pi``, ``synth``, ``speech``, ...)."""
    family: str = ""
    """The group of near-identical sources it belongs to; its source's key when empty."""
    expression: str = PLAIN

    @property
    def source_family(self) -> str:
        return self.family or self.soundfont


def ensure_packages(
    soundfonts: Sequence[Soundfont], binaries: Sequence[tuple[str, str]] = ()
) -> None:
    """Install FluidSynth, the soundfonts and the other tools (binary, package) with apt-get
    when they are missing."""
    missing = [sf.package for sf in soundfonts if not sf.path.exists()]
    for binary, package in (("fluidsynth", "fluidsynth"), *binaries):
        if shutil.which(binary) is None:
            missing.insert(0, package)
    if not missing:
        return
    logger.info("installing Debian packages: %s", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def note_plan(
    instrument: Instrument, velocities: Sequence[int] = VELOCITIES, note_step: int = 1
) -> list[Note]:
    """Every ``note_step``-th semitone of the range at every velocity, with varied lengths;
    a third of the notes get vibrato, another third a bend into the note."""
    rng = np.random.default_rng(instrument.program)
    return [
        Note(
            note,
            velocity,
            float(rng.uniform(0.6, 2.0)),
            EXPRESSIONS[(note + index) % len(EXPRESSIONS)],
        )
        for note in range(instrument.low, instrument.high + 1, note_step)
        for index, velocity in enumerate(velocities)
    ]


def write_midi(path: Path, program: int, notes: Sequence[Note], channel: int = 0) -> None:
    """A type-0 MIDI file: program change, then one note per slot on ``channel``.

    Vibrato is the modulation wheel (CC1) raised through the note; a bend starts up to a
    semitone off (the default bend range is two) and glides to the pitch in 0.2 s.
    """
    import mido

    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message)
    for index, note in enumerate(notes):
        start = _ticks(LEAD_SECONDS + index * SLOT_SECONDS)
        end = start + _ticks(note.duration)
        if note.expression == VIBRATO:
            for step in range(8):
                value = min(127, 40 + 12 * step)
                tick = start + _ticks(0.1 * step)
                events.append((tick, 0, _cc(channel, 1, value)))
        elif note.expression == BEND:
            depth = (1 if note.note % 2 else -1) * (2048 + 1024 * (note.velocity % 3))
            for step in range(6):
                tick = max(start - 1, 0) if step == 0 else start + _ticks(0.04 * step)
                pitch = int(depth * (1 - step / 5))
                events.append((tick, 0, mido.Message("pitchwheel", channel=channel, pitch=pitch)))
        events.append(
            (
                start,
                1,
                mido.Message("note_on", channel=channel, note=note.note, velocity=note.velocity),
            )
        )
        events.append(
            (end, 2, mido.Message("note_off", channel=channel, note=note.note, velocity=0))
        )
        if note.expression == VIBRATO:
            events.append((end + 1, 3, _cc(channel, 1, 0)))
        elif note.expression == BEND:
            events.append((end + 1, 3, mido.Message("pitchwheel", channel=channel, pitch=0)))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US_PER_BEAT, time=0))
    if channel != DRUM_CHANNEL:
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    now = 0
    for tick, _, message in sorted(events, key=lambda event: (event[0], event[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    tail = _ticks(LEAD_SECONDS + len(notes) * SLOT_SECONDS) - now
    track.append(mido.MetaMessage("end_of_track", time=max(tail, 0)))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    midi.save(str(path))


def _cc(channel: int, control: int, value: int) -> Any:
    import mido

    return mido.Message("control_change", channel=channel, control=control, value=value)


def _ticks(seconds: float) -> int:
    return int(round(seconds * TICKS_PER_SECOND))


def render_midi(soundfont: Path, midi_path: Path, wav_path: Path) -> np.ndarray:
    """Render with FluidSynth (no audio driver, no shell) and return mono float32 samples."""
    import soundfile

    command = [
        "fluidsynth",
        "-n",
        "-i",
        "-q",
        "-g",
        "0.5",
        "-r",
        str(SAMPLE_RATE),
        "-F",
        str(wav_path),
        "-T",
        "wav",
        str(soundfont),
        str(midi_path),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples, rate = soundfile.read(str(wav_path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz instead of {SAMPLE_RATE} Hz")
    # FluidSynth writes stereo; the instruments are panned, so average rather than pick.
    return samples.mean(axis=1)


def slice_clips(samples: np.ndarray, count: int) -> Iterator[np.ndarray]:
    """The ``count`` clips, each starting at its note's onset, zero-padded at the very end."""
    clip_len = int(CLIP_SECONDS * SAMPLE_RATE)
    for index in range(count):
        start = int(round((LEAD_SECONDS + index * SLOT_SECONDS) * SAMPLE_RATE))
        clip = samples[start : start + clip_len]
        if len(clip) < clip_len:
            clip = np.pad(clip, (0, clip_len - len(clip)))
        yield clip


def is_silent(clip: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(np.square(clip, dtype=np.float64)))) < SILENCE_RMS


def clip_name(label: str, note: Note | int, velocity: int = 0, expression: str = PLAIN) -> str:
    if isinstance(note, Note):
        note, velocity, expression = note.note, note.velocity, note.expression
    suffix = f"-{expression}" if expression else ""
    return f"{label}-n{note:03d}-v{velocity:03d}{suffix}.wav"


def write_clip(
    out_dir: Path,
    source: str,
    family: str,
    label: str,
    name: str,
    clip: np.ndarray,
    program: int = -1,
    note: int = 0,
    velocity: int = 0,
    expression: str = PLAIN,
) -> ClipRecord:
    """Write one clip as ``<source>/<label>/<name>``; its index record."""
    import soundfile

    clip_dir = out_dir / source / label
    clip_dir.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(clip_dir / name), np.clip(clip, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return ClipRecord(
        file=f"{source}/{label}/{name}",
        label=label,
        program=program,
        note=note,
        velocity=velocity,
        soundfont=source,
        family=family,
        expression=expression,
    )


def render_instrument(
    soundfont: Soundfont,
    instrument: Instrument,
    out_dir: Path,
    velocities: Sequence[int] = VELOCITIES,
    note_step: int = 1,
) -> list[ClipRecord]:
    """Render one instrument from one soundfont; write its non-silent clips."""
    notes = note_plan(instrument, velocities, note_step)
    return _render_notes(soundfont, instrument.label, instrument.program, notes, out_dir, 0)


def render_drums(
    soundfont: Soundfont, out_dir: Path, notes: Sequence[int] = DRUM_NOTES
) -> list[ClipRecord]:
    """The soundfont's GM percussion kit (channel 10), every note: ``unknown`` clips."""
    plan = [Note(note, velocity, 0.5) for note in notes for velocity in DRUM_VELOCITIES]
    return _render_notes(soundfont, UNKNOWN, 128, plan, out_dir, DRUM_CHANNEL, prefix="drum")


def _render_notes(
    soundfont: Soundfont,
    label: str,
    program: int,
    notes: Sequence[Note],
    out_dir: Path,
    channel: int,
    prefix: str | None = None,
) -> list[ClipRecord]:
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        midi_path = Path(tmp) / f"{label}.mid"
        write_midi(midi_path, program, notes, channel)
        samples = render_midi(soundfont.path, midi_path, Path(tmp) / "render.wav")
    records = []
    for note, clip in zip(notes, slice_clips(samples, len(notes)), strict=True):
        if is_silent(clip):
            continue
        name = clip_name(prefix or label, note)
        records.append(
            write_clip(
                out_dir,
                soundfont.key,
                soundfont.family,
                label,
                name,
                clip,
                program,
                note.note,
                note.velocity,
                note.expression,
            )
        )
    dropped = len(notes) - len(records)
    if dropped:
        logger.info("%s/%s: dropped %d silent notes", soundfont.key, prefix or label, dropped)
    return records


INDEX_COLUMNS = (
    "file",
    "label",
    "program",
    "note",
    "velocity",
    "soundfont",
    "family",
    "expression",
)


def write_index(out_dir: Path, records: Sequence[ClipRecord]) -> Path:
    path = out_dir / "index.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        for record in records:
            writer.writerow(
                [
                    record.file,
                    record.label,
                    record.program,
                    record.note,
                    record.velocity,
                    record.soundfont,
                    record.source_family,
                    record.expression,
                ]
            )
    return path


def read_index(data_dir: Path) -> list[ClipRecord]:
    with (data_dir / "index.csv").open(newline="", encoding="utf-8") as handle:
        return [
            ClipRecord(
                file=row["file"],
                label=row["label"],
                program=int(row["program"]),
                note=int(row["note"]),
                velocity=int(row["velocity"]),
                soundfont=row["soundfont"],
                family=row.get("family") or "",
                expression=row.get("expression") or PLAIN,
            )
            for row in csv.DictReader(handle)
        ]
