"""Bug: the step never calls optimizer.zero_grad(), so gradients accumulate across steps (MLP, SGD with momentum).

Should be caught by: parameter-updates (a gradient left from the previous step is added to), else memorization.
"""

from __future__ import annotations

import torch
from torch import nn


def spec() -> dict:
    g = torch.Generator().manual_seed(10)
    x = torch.randn(32, 20, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 5))

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        loss = loss_fn(model(inputs), targets)
        loss.backward()  # BUG: no optimizer.zero_grad() before this
        optimizer.step()
        return loss.item()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
