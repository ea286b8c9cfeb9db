"""Correct: MLP with BatchNorm trained with gradient accumulation (4 micro-batch backward calls per optimizer step)."""

from __future__ import annotations

import torch
from torch import nn

MICRO_BATCHES = 4


def spec() -> dict:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(32, 12, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(12, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 4))

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for xs, ys in zip(inputs.chunk(MICRO_BATCHES), targets.chunk(MICRO_BATCHES)):
            loss = loss_fn(model(xs), ys) / MICRO_BATCHES
            loss.backward()
            total += loss.item()
        optimizer.step()
        return total

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
