"""Bug: the user's save_checkpoint/load_checkpoint keep the model weights and epoch but drop the Adam state (MLP).

Resumed training restarts Adam's moments and step count. Should be caught by: checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn


def spec() -> dict:
    g = torch.Generator().manual_seed(22)
    x = torch.randn(32, 20, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    def save_checkpoint(model, optimizer, path):
        torch.save({"model": model.state_dict(), "epoch": 3}, path)  # BUG: no optimizer.state_dict()

    def load_checkpoint(model, optimizer, path):
        ckpt = torch.load(path, weights_only=True)
        model.load_state_dict(ckpt["model"])
        return ckpt["epoch"]

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
        "save_checkpoint": save_checkpoint,
        "load_checkpoint": load_checkpoint,
    }
