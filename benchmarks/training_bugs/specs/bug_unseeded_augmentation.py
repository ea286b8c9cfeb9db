"""Bug: the step adds Gaussian-noise augmentation from np.random.default_rng() created without a seed (CNN, 1x8x8).

Seeding torch, random and numpy's global state does not reach it. Should be caught by: reproducibility.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

_rng = np.random.default_rng()  # BUG: no seed


def spec() -> dict:
    g = torch.Generator().manual_seed(21)
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
        )

    def train_step(model, batch, loss_fn, optimizer):
        images, labels = batch
        noise = torch.from_numpy(_rng.normal(0.0, 0.05, size=images.shape).astype(np.float32))
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(images + noise), labels)
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
