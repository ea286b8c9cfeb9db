"""Bug: a regression MLP's input normaliser keeps running statistics in plain tensor attributes, not register_buffer.

state_dict and checkpoints lose them and .to(device) does not move them. Should be caught by: train-mode, checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn


class NormalizedMLP(nn.Module):
    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.running_mean = torch.zeros(features)  # BUG: should be self.register_buffer("running_mean", ...)
        self.running_var = torch.ones(features)
        self.net = nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(0.9).add_(0.1 * x.mean(0))
                self.running_var.mul_(0.9).add_(0.1 * x.var(0))
        return self.net((x - self.running_mean) / (self.running_var + 1e-5).sqrt())


def spec() -> dict:
    g = torch.Generator().manual_seed(24)
    x = torch.randn(24, 8, generator=g) * 2.0 + 1.0
    y = (x[:, :3] - 1.0).sum(1, keepdim=True)

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": NormalizedMLP,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": nn.MSELoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
