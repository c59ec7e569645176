"""CNN training loop for the instrument classifier (CPU, a few minutes)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ml.audio_cnn import InstrumentCNN, count_parameters
from ml.features import log_mel_from_power
from ml.training.instruments_augment import augment_log_mel
from ml.training.instruments_data import ClipSet

if TYPE_CHECKING:
    from ml.training.config import TrainConfig

logger = logging.getLogger(__name__)


def balanced_order(
    targets: np.ndarray, rng: np.random.Generator, size: int | None = None
) -> np.ndarray:
    """One epoch of indices in which every class is drawn equally often."""
    n_classes = int(targets.max()) + 1
    counts = np.bincount(targets, minlength=n_classes)
    weights = 1.0 / counts[targets]
    return rng.choice(
        len(targets), size=size or len(targets), replace=True, p=weights / weights.sum()
    )


def epoch_length(clips: ClipSet, config: TrainConfig) -> int:
    """Clips drawn per epoch: all of them, or ``config.epoch_size`` when set (a bound on the
    cost of an epoch, whatever the size of the data set)."""
    return config.epoch_size or len(clips.targets)


def train_cnn(
    clips: ClipSet, n_classes: int, config: TrainConfig
) -> tuple[InstrumentCNN, dict[str, Any]]:
    """Train from scratch with fresh augmentation every epoch; returns the model in eval mode."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = InstrumentCNN(n_classes, n_mels=clips.power.shape[-2], channels=config.channels)
    steps = max(1, -(-epoch_length(clips, config) // config.batch_size))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, epochs=config.epochs, steps_per_epoch=steps
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    history: dict[str, Any] = {"loss": [], "parameters": count_parameters(model)}
    logger.info(
        "CNN: %d parameters, %d clips, %d epochs",
        history["parameters"],
        len(clips.targets),
        config.epochs,
    )
    for epoch in range(config.epochs):
        started = time.perf_counter()
        loss = _epoch(model, clips, rng, config, optimizer, schedule, loss_fn)
        history["loss"].append(round(loss, 4))
        logger.info(
            "epoch %d/%d: loss %.4f (%.1f s)",
            epoch + 1,
            config.epochs,
            loss,
            time.perf_counter() - started,
        )
    return model.eval(), history


def _epoch(
    model: InstrumentCNN,
    clips: ClipSet,
    rng: np.random.Generator,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
) -> float:
    model.train()
    order = balanced_order(clips.targets, rng, epoch_length(clips, config))
    total = 0.0
    for start in range(0, len(order), config.batch_size):
        batch = order[start : start + config.batch_size]
        power = clips.power[batch]
        if power.ndim == 4:  # (clips, copies, mels, frames): one recorded copy of each
            power = power[np.arange(len(batch)), rng.integers(0, power.shape[1], len(batch))]
        inputs = augment_log_mel(power, rng, config.augment, config.features.top_db)
        logits = model(torch.from_numpy(inputs))
        loss = loss_fn(logits, torch.from_numpy(clips.targets[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(batch)
    return total / len(order)


def predict_logits(
    model: nn.Module, power: np.ndarray, config: TrainConfig, batch_size: int = 256
) -> np.ndarray:
    """(clips, classes) logits of un-augmented clips: copy 0 of a (clips, copies, ...) cache."""
    if power.ndim == 4:
        power = power[:, 0]
    model.eval()
    logits = []
    with torch.inference_mode():
        for start in range(0, len(power), batch_size):
            inputs = log_mel_from_power(power[start : start + batch_size], config.features.top_db)
            logits.append(model(torch.from_numpy(inputs)).numpy())
    if not logits:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(logits)
