"""Rendered clips for training: held-out pitches, mel power, the committed evaluation set."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml import features
from ml.training.render_instruments import INSTRUMENTS, SAMPLE_RATE, ClipRecord

logger = logging.getLogger(__name__)

CLIP_SECONDS = 2.0
EVAL_VELOCITY = 80
EVAL_CLIPS_PER_CLASS = 2


@dataclass
class ClipSet:
    """Clips with their mel power (n, n_mels, frames) and integer targets."""

    root: Path
    records: list[ClipRecord]
    power: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.float32))
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class Split:
    labels: list[str]
    heldout_every: int
    train: ClipSet
    heldout: ClipSet


def is_heldout(record: ClipRecord, every: int) -> bool:
    """Every ``every``-th semitone from the bottom of the range, starting with the 3rd; a clip
    with no instrument (``unknown``) has no pitch and is never one."""
    low = next((i.low for i in INSTRUMENTS if i.label == record.label), None)
    return low is not None and (record.note - low) % every == 2 % every


def read_clip(path: Path) -> np.ndarray:
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = features.resample(features.to_mono(samples), rate, SAMPLE_RATE)
    return features.fit_length(mono, int(CLIP_SECONDS * SAMPLE_RATE))


def evaluation_set_records(
    records: Sequence[ClipRecord], labels: Sequence[str]
) -> list[ClipRecord]:
    """Per class, mid-velocity notes at a third and two thirds up the rendered range."""
    chosen = []
    for label in labels:
        by_pitch = sorted((r for r in records if r.label == label), key=_pitch)
        candidates = [r for r in by_pitch if r.velocity == EVAL_VELOCITY] or by_pitch
        if not candidates:
            continue
        for k in range(1, EVAL_CLIPS_PER_CLASS + 1):
            position = k * len(candidates) // (EVAL_CLIPS_PER_CLASS + 1)
            if candidates[position] not in chosen:
                chosen.append(candidates[position])
    return chosen


def _pitch(record: ClipRecord) -> tuple[int, int]:
    return record.note, record.velocity


def write_evaluation_set(root: Path, records: Sequence[ClipRecord], out_dir: Path) -> Path:
    """FLAC copies of ``records`` and ``labels.csv`` (file, label), small enough to commit."""
    import soundfile

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.flac"):
        stale.unlink()
    rows = []
    for record in records:
        name = Path(record.file).with_suffix(".flac").name
        samples = read_clip(root / record.file)
        soundfile.write(str(out_dir / name), samples, SAMPLE_RATE, subtype="PCM_16")
        rows.append((name, record.label))
    labels_path = out_dir / "labels.csv"
    with labels_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        writer.writerows(rows)
    logger.info("wrote %d evaluation clips to %s", len(rows), out_dir)
    return labels_path
