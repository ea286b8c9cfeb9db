"""Bug: a freeze helper meant for fine-tuning also freezes the CNN's first conv block, which nobody declared frozen.

Should be caught by: parameter-updates (requires_grad=False on parameters not in 'frozen').
"""

from __future__ import annotations

import torch
from torch import nn


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(16 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).flatten(1))


def freeze_pretrained(model: nn.Module, prefixes: tuple[str, ...] = ("stem",)) -> nn.Module:
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)
    return model


def spec() -> dict:
    g = torch.Generator().manual_seed(14)
    x = torch.randn(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)

    def train_step(model, batch, loss_fn, optimizer):
        images, labels = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        # BUG: training from scratch, but the model factory still runs the fine-tuning freeze
        "model_factory": lambda: freeze_pretrained(CNN()),
        "optimizer_factory": lambda params: torch.optim.Adam([p for p in params if p.requires_grad], lr=3e-3),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
