"""The instrument models' training settings, in a module of their own.

The trainers (``instruments_cnn``, ``instruments_mfcc``), the driver (``instruments``) and the
tests all read it; keeping it apart from the driver is what keeps ``ml.training`` free of
import cycles (the driver imports the trainers, never the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.features import FeatureParams
from ml.training.instruments_augment import AugmentParams

FINAL_CHANNELS: tuple[int, ...] = (16, 32, 64, 96)
"""Narrower than ``ml.audio_cnn.DEFAULT_CHANNELS`` (@1, @2): seven trainings (six folds and the
final model) on two CPU cores, 80,000 parameters."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    heldout_every: int = 5
    seed: int = 0
    channels: tuple[int, ...] = FINAL_CHANNELS
    mfcc_copies: int = 4
    """Augmented copies of each training clip for the MFCC classifier."""
    threads: int = 2
    epoch_size: int = 3000
    """Clips drawn per epoch (balanced over classes); 0: as many as there are."""
    copies: int = 2
    """Versions of each clip in the feature cache: as rendered, then recorded copies."""
    loso: bool = True
    """Leave-one-source-out: one model per source family, trained without it, measured on it."""
    loso_epochs: int = 40
    """Epochs of each fold's model; 0: ``epochs``."""
    max_clips: int = 0
    """Train and evaluate on at most this many clips (a stratified subset); 0: all."""
    version: str = "1"
    cnn_name: str = "instrument-cnn"
    mfcc_name: str = "instrument-mfcc"
    augment: AugmentParams = field(default_factory=AugmentParams)
    features: FeatureParams = field(default_factory=FeatureParams)
