"""The instrument models' training settings, in a module of their own.

The trainers (``instruments_cnn``, ``instruments_mfcc``), the driver (``instruments``) and the
tests all read it; keeping it apart from the driver is what keeps ``ml.training`` free of
import cycles (the driver imports the trainers, never the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.audio_cnn import DEFAULT_CHANNELS
from ml.features import FeatureParams
from ml.training.instruments_augment import AugmentParams


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    heldout_every: int = 5
    seed: int = 0
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    mfcc_copies: int = 4
    """Augmented copies of each training clip for the MFCC classifier."""
    threads: int = 2
    version: str = "1"
    cnn_name: str = "instrument-cnn"
    mfcc_name: str = "instrument-mfcc"
    augment: AugmentParams = field(default_factory=AugmentParams)
    features: FeatureParams = field(default_factory=FeatureParams)
