"""Bug: the CNN ends in nn.Softmax and the loss is nn.CrossEntropyLoss, which applies log_softmax again (1x8x8 images).

Should be caught by: loss-at-init (double softmax), and typically memorization (the loss has a floor, gradients vanish).
"""

from __future__ import annotations

import torch
from torch import nn


def spec() -> dict:
    g = torch.Generator().manual_seed(13)
    x = torch.randn(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 4),
            nn.Softmax(dim=1),  # BUG: CrossEntropyLoss expects logits
        )

    def train_step(model, batch, loss_fn, optimizer):
        images, labels = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=3e-3),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
