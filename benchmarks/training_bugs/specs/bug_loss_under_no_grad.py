"""Bug: the step's forward pass runs under torch.no_grad() (copied from the eval loop), so backward() raises.

Regression MLP.

Should be caught by: parameter-updates (the training step raised; 'the loss is detached from the model').
"""

from __future__ import annotations

import torch
from torch import nn


def spec() -> dict:
    g = torch.Generator().manual_seed(12)
    x = torch.randn(24, 8, generator=g)
    y = x[:, :2].sum(1, keepdim=True) + 0.1 * torch.randn(24, 1, generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        optimizer.zero_grad()
        with torch.no_grad():  # BUG: copied from evaluate()
            pred = model(inputs)
        loss = loss_fn(pred, targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": nn.MSELoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
