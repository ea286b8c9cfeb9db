"""Bug: the learning rate is read from a config under the wrong key and falls back to 0.0 (regression MLP).

Should be caught by: parameter-updates (learning rate 0), loss-decreases, memorization.
"""

from __future__ import annotations

import torch
from torch import nn

CONFIG = {"lr": 1e-2, "weight_decay": 0.0}


def spec() -> dict:
    g = torch.Generator().manual_seed(15)
    x = torch.randn(24, 8, generator=g)
    y = torch.tanh(x[:, :3]).sum(1, keepdim=True)

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))

    def optimizer_factory(params):
        # BUG: the key is "lr", not "learning_rate"
        return torch.optim.Adam(params, lr=CONFIG.get("learning_rate", 0.0), weight_decay=CONFIG["weight_decay"])

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
        "optimizer_factory": optimizer_factory,
        "loss_fn": nn.MSELoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
