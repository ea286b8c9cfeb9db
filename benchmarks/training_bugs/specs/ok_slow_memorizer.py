"""Correct: a deeper, narrow tanh MLP on plain SGD that legitimately needs a few hundred steps to memorize its batch.

About 360 steps at lr 0.05, within the default memorization budget of 500 steps; no train_step (the kit's default).
"""

from __future__ import annotations

import torch
from torch import nn


def spec() -> dict:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(32, 16, generator=g)
    y = torch.randint(0, 8, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(
            nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 8)
        )

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.SGD(params, lr=0.05),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
    }
