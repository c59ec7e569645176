"""The instrument classifier: a small CNN on log-mel spectrograms.

Checkpoints hold only the ``state_dict``; this code is the architecture that the manifest
names (``ml.audio_cnn:InstrumentCNN``), so loading needs no pickle (``weights_only=True``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_CHANNELS: tuple[int, ...] = (32, 64, 128, 160)


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class InstrumentCNN(nn.Module):
    """Conv blocks over (mel, time), then pooling that forgets where the note sits.

    Averaging over frequency makes the same timbre at another pitch look alike, which is
    what lets the model generalise to notes it never heard; mean and max over time keep
    both the sustain and the attack.
    """

    def __init__(
        self,
        n_classes: int,
        n_mels: int = 64,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        dropout: float = 0.3,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        # Calibration (temperature scaling), chosen after training on held-out sources and
        # stored in the manifest's architecture_kwargs: part of the graph that is exported.
        self.temperature = float(temperature)
        widths = [1, *channels]
        self.features = nn.Sequential(
            *(_block(widths[i], widths[i + 1]) for i in range(len(channels)))
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * channels[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_mels, frames) log-mel in [-1, 1] to (batch, n_classes) logits."""
        hidden = self.features(x.unsqueeze(1)).mean(dim=2)
        pooled = torch.cat([hidden.mean(dim=2), hidden.amax(dim=2)], dim=1)
        logits: torch.Tensor = self.classifier(self.dropout(pooled))
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return logits


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
