"""Bug: the step shuffles the batch's inputs but not its labels: labels are permuted differently every step (MLP).

Should be caught by: memorization (the loss falls a little, the batch is never fit).
"""

from __future__ import annotations

import torch
from torch import nn


def spec() -> dict:
    g = torch.Generator().manual_seed(18)
    x = torch.randn(32, 20, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 5))

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        perm = torch.randperm(inputs.size(0))
        inputs = inputs[perm]  # BUG: targets not indexed with perm
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
