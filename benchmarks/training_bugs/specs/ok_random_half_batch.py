"""Correct: each step trains on a random half of the batch (experience-replay style sampling), MLP with BatchNorm.

idx = torch.randperm(n)[: n // 2]; the model's forward, the loss and the update see only those rows. The sampling
uses torch's global generator, so seeding makes it reproducible; dropout, Adam.
"""

from __future__ import annotations

import torch
from torch import nn


class TabularMLP(nn.Module):
    def __init__(self, n_features: int = 16, n_classes: int = 3, hidden: int = 64, p: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def spec() -> dict:
    x = torch.randn(32, 16)
    y = torch.randint(0, 3, (32,))

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        n = x.size(0)
        idx = torch.randperm(n)[: n // 2]
        model.train()
        optimizer.zero_grad()
        out = model(x[idx])
        loss = loss_fn(out, y[idx])
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": TabularMLP,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=3e-3),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
