"""Bug: setup() builds the optimizer, then replaces the CNN's classifier head for the new number of classes.

The new head is not in the optimizer and never trains. Should be caught by: parameter-updates (stale optimizer).
"""

from __future__ import annotations

import torch
from torch import nn


class CNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def spec() -> dict:
    g = torch.Generator().manual_seed(19)
    x = torch.randn(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)

    def setup():
        model = CNN()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.head = nn.Linear(16 * 4 * 4, 4)  # BUG: after the optimizer was built
        return model, optimizer

    def train_step(model, batch, loss_fn, optimizer):
        images, labels = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "setup": setup,
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
