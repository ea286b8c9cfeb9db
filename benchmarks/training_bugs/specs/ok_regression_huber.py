"""Correct: MLP regression (2 outputs), SmoothL1 loss, Adam, dropout.

The step logs an eval-mode metric under no_grad, then restores train mode.
"""

from __future__ import annotations

import torch
from torch import nn

LOG: dict[str, float] = {}


def spec() -> dict:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(24, 6, generator=g)
    y = torch.stack([torch.sin(x[:, 0]) + 0.5 * x[:, 1], x[:, 2] * x[:, 3]], dim=1)
    y = y + 0.1 * torch.randn(y.shape, generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(
            nn.Linear(6, 64), nn.SiLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2)
        )

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            LOG["mae"] = float((model(inputs) - targets).abs().mean())
        model.train()
        return loss.detach()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=5e-3),
        "loss_fn": nn.SmoothL1Loss(),
        "batch": (x, y),
        "train_step": train_step,
    }
