"""The example's model: a small MLP classifier with BatchNorm and dropout."""

from __future__ import annotations

import torch
from torch import nn


class SpiralNet(nn.Module):
    def __init__(self, in_features: int = 2, hidden: int = 64, classes: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
