"""Bug: learning rate 100x too high for plain SGD on a regression MLP (lr=1.0 where 0.01 works): the loss explodes.

Should be caught by: finite-values, loss-decreases, memorization.
"""

from __future__ import annotations

import torch
from torch import nn


def spec() -> dict:
    g = torch.Generator().manual_seed(16)
    x = torch.randn(32, 8, generator=g) * 3.0
    y = x[:, :4].sum(1, keepdim=True) * 2.0

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.SGD(params, lr=1.0),  # BUG: meant 1e-2
        "loss_fn": nn.MSELoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
