"""Bug: the step logs batch accuracy in model.eval() and never switches back to training mode.

CNN with BatchNorm and dropout; the step relies on a model.train() its caller never makes. From the second step
on, BatchNorm uses running statistics and dropout is off. Should be caught by: train-mode.
"""

from __future__ import annotations

import torch
from torch import nn

LOG: dict[str, float] = {}


def spec() -> dict:
    g = torch.Generator().manual_seed(23)
    x = torch.randn(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(8 * 4 * 4, 4),
        )

    def train_step(model, batch, loss_fn, optimizer):
        images, labels = batch
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)  # BUG: no model.train() here ...
        loss.backward()
        optimizer.step()
        model.eval()  # ... and this is never undone
        with torch.no_grad():
            LOG["accuracy"] = float((model(images).argmax(1) == labels).float().mean())
        return loss.item()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=3e-3),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
