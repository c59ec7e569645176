"""Render single-note instrument clips from General MIDI soundfonts with FluidSynth.

One MIDI file per instrument and soundfont holds every note of the instrument's range at
several velocities, one note per fixed-length slot; FluidSynth renders it once (starting it
per note would reload the soundfont each time) and the result is sliced into clips.

    python -m ml.training.render_instruments --out data/instruments

Writes ``<out>/<soundfont>/<label>/<label>-n<note>-v<velocity>.wav`` (mono, 16-bit) and
``<out>/index.csv`` (file, label, program, note, velocity, soundfont).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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

APT_PACKAGES = ("fluidsynth", "fluid-soundfont-gm", "musescore-general-soundfont-small")


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
LABELS: tuple[str, ...] = tuple(instrument.label for instrument in INSTRUMENTS)


@dataclass(frozen=True)
class Soundfont:
    key: str
    path: Path
    package: str


SOUNDFONTS: dict[str, Soundfont] = {
    "fluidr3": Soundfont(
        "fluidr3", Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm"
    ),
    "musescore": Soundfont(
        "musescore",
        Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
        "musescore-general-soundfont-small",
    ),
}
ALL_SOUNDFONTS: tuple[Soundfont, ...] = tuple(SOUNDFONTS.values())
TRAIN_SOUNDFONT = "fluidr3"
VALIDATION_SOUNDFONT = "musescore"


@dataclass(frozen=True)
class Note:
    note: int
    velocity: int
    duration: float
    """Seconds the key is held; varied so clips hold both decays and sustained notes."""


@dataclass(frozen=True)
class ClipRecord:
    file: str
    label: str
    program: int
    note: int
    velocity: int
    soundfont: str


def ensure_packages(soundfonts: Sequence[Soundfont]) -> None:
    """Install FluidSynth and the soundfonts with apt-get when they are missing."""
    missing_binary = shutil.which("fluidsynth") is None
    missing = [sf.package for sf in soundfonts if not sf.path.exists()]
    if missing_binary:
        missing.insert(0, "fluidsynth")
    if not missing:
        return
    logger.info("installing Debian packages: %s", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def note_plan(
    instrument: Instrument, velocities: Sequence[int] = VELOCITIES, note_step: int = 1
) -> list[Note]:
    """Every ``note_step``-th semitone of the range at every velocity, with varied lengths."""
    rng = np.random.default_rng(instrument.program)
    return [
        Note(note, velocity, float(rng.uniform(0.6, 2.0)))
        for note in range(instrument.low, instrument.high + 1, note_step)
        for velocity in velocities
    ]


def write_midi(path: Path, program: int, notes: Sequence[Note]) -> None:
    """A type-0 MIDI file: program change, then one note per slot on channel 0."""
    import mido

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US_PER_BEAT, time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    now = 0
    for index, note in enumerate(notes):
        start = _ticks(LEAD_SECONDS + index * SLOT_SECONDS)
        end = start + _ticks(note.duration)
        track.append(
            mido.Message("note_on", note=note.note, velocity=note.velocity, time=start - now)
        )
        track.append(mido.Message("note_off", note=note.note, velocity=0, time=end - start))
        now = end
    tail = _ticks(LEAD_SECONDS + len(notes) * SLOT_SECONDS) - now
    track.append(mido.MetaMessage("end_of_track", time=max(tail, 0)))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    midi.save(str(path))


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


def render_instrument(
    soundfont: Soundfont,
    instrument: Instrument,
    out_dir: Path,
    velocities: Sequence[int] = VELOCITIES,
    note_step: int = 1,
) -> list[ClipRecord]:
    """Render one instrument from one soundfont; write its non-silent clips."""
    import soundfile

    notes = note_plan(instrument, velocities, note_step)
    clip_dir = out_dir / soundfont.key / instrument.label
    clip_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        midi_path = Path(tmp) / f"{instrument.label}.mid"
        write_midi(midi_path, instrument.program, notes)
        samples = render_midi(soundfont.path, midi_path, Path(tmp) / "render.wav")
    records = []
    for note, clip in zip(notes, slice_clips(samples, len(notes)), strict=True):
        if is_silent(clip):
            continue
        name = f"{instrument.label}-n{note.note:03d}-v{note.velocity:03d}.wav"
        soundfile.write(
            str(clip_dir / name), np.clip(clip, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16"
        )
        records.append(
            ClipRecord(
                file=f"{soundfont.key}/{instrument.label}/{name}",
                label=instrument.label,
                program=instrument.program,
                note=note.note,
                velocity=note.velocity,
                soundfont=soundfont.key,
            )
        )
    dropped = len(notes) - len(records)
    if dropped:
        logger.info("%s/%s: dropped %d silent notes", soundfont.key, instrument.label, dropped)
    return records


def render_all(
    out_dir: Path,
    soundfonts: Sequence[Soundfont] = ALL_SOUNDFONTS,
    instruments: Sequence[Instrument] = INSTRUMENTS,
    velocities: Sequence[int] = VELOCITIES,
    note_step: int = 1,
    show_progress: bool = False,
) -> list[ClipRecord]:
    """Render every (soundfont, instrument) pair, two FluidSynth processes at a time."""
    ensure_packages(soundfonts)
    jobs = [(sf, instrument) for sf in soundfonts for instrument in instruments]
    records: list[ClipRecord] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(render_instrument, sf, instrument, out_dir, velocities, note_step)
            for sf, instrument in jobs
        ]
        for future in _progress(futures, show_progress):
            records.extend(future.result())
    write_index(out_dir, records)
    return records


def _progress(futures: list, show_progress: bool) -> Iterator:
    if not show_progress:
        return iter(futures)
    from tqdm import tqdm

    return iter(tqdm(futures, desc="rendering", unit="instrument"))


def write_index(out_dir: Path, records: Sequence[ClipRecord]) -> Path:
    path = out_dir / "index.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "program", "note", "velocity", "soundfont"])
        for record in records:
            writer.writerow(
                [
                    record.file,
                    record.label,
                    record.program,
                    record.note,
                    record.velocity,
                    record.soundfont,
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
            )
            for row in csv.DictReader(handle)
        ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/instruments"))
    parser.add_argument(
        "--note-step", type=int, default=1, help="render every n-th semitone (1: all of them)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    records = render_all(args.out, note_step=args.note_step, show_progress=True)
    for key in SOUNDFONTS:
        count = sum(record.soundfont == key for record in records)
        print(f"{key}: {count} clips")
    print(f"index: {args.out / 'index.csv'}")


if __name__ == "__main__":
    main()
