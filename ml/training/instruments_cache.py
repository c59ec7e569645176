"""The feature cache: every clip's mel power, clean and as recorded copies, computed once.

Training the leave-one-source-out folds and the final model on two CPU cores is only
affordable if no fold reads audio or runs an STFT. ``load_features`` reads the clips of
an index once, passes each through ``instruments_room.augment_waveform`` ``copies - 1``
times (a room, a microphone, a compressor, noise, a level), computes the mel power of every
version with the serving code's own functions (``ml.features``), and keeps the result in
``<data>/cache/features-<key>.npz``; the key hashes the index, the feature parameters, the
number of copies and the seed, so a changed data set or setting never reads a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ml import features
from ml.training.instruments_data import read_clip
from ml.training.instruments_room import RoomParams, augment_waveform
from ml.training.render_instruments import SAMPLE_RATE, ClipRecord

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class FeatureCache:
    records: list[ClipRecord]
    power: np.ndarray
    """(clips, copies, n_mels, frames) float32 mel power; copy 0 is the clip as rendered."""


def cache_key(
    records: Sequence[ClipRecord], params: features.FeatureParams, copies: int, seed: int
) -> str:
    digest = hashlib.sha256()
    description = {
        "version": CACHE_VERSION,
        "features": params.as_manifest(),
        "copies": copies,
        "seed": seed,
        "room": asdict(RoomParams()),
    }
    digest.update(json.dumps(description, sort_keys=True).encode())
    for record in records:
        digest.update(f"{record.file},{record.label},{record.source_family}\n".encode())
    return digest.hexdigest()[:16]


def load_features(
    root: Path,
    records: Sequence[ClipRecord],
    params: features.FeatureParams,
    copies: int = 2,
    seed: int = 0,
    cache_dir: Path | None = None,
    show_progress: bool = False,
    chunk: int = 128,
) -> FeatureCache:
    """Every clip's mel power, from the cache when it holds exactly these clips."""
    cache_dir = cache_dir or root / "cache"
    path = cache_dir / f"features-{cache_key(records, params, copies, seed)}.npz"
    if path.exists():
        with np.load(path) as stored:
            power = stored["power"]
        logger.info("feature cache: %s (%d clips, %d copies)", path, len(power), copies)
        return FeatureCache(list(records), power)
    power = compute_features(root, records, params, copies, seed, show_progress, chunk)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, power=power)
    partial.replace(path)
    logger.info("wrote feature cache %s", path)
    return FeatureCache(list(records), power)


def compute_features(
    root: Path,
    records: Sequence[ClipRecord],
    params: features.FeatureParams,
    copies: int,
    seed: int,
    show_progress: bool = False,
    chunk: int = 128,
) -> np.ndarray:
    starts = range(0, len(records), chunk)
    if show_progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="features", unit=f"x{chunk} clips")
    parts = []
    for start in starts:
        batch = records[start : start + chunk]
        clean = [read_clip(root / record.file) for record in batch]
        versions = [clean]
        for copy in range(1, copies):
            versions.append(
                [
                    augment_waveform(
                        clip, np.random.default_rng([seed, copy, start + offset]), RoomParams()
                    )
                    for offset, clip in enumerate(clean)
                ]
            )
        powers = [
            features.mel_power(features.peak_normalise(np.stack(version)), SAMPLE_RATE, params)
            for version in versions
        ]
        parts.append(np.stack(powers, axis=1))
    if not parts:
        return np.zeros((0, copies, params.n_mels, 0), np.float32)
    return np.concatenate(parts).astype(np.float32)
