"""Correct: a small CNN with BatchNorm trained on two micro-batches per step (loss / 2 each, one optimizer.step()).

Gradient accumulation as scripts write it to emulate a larger batch on a small GPU; 3x16x16 images, SGD with
Nesterov momentum and weight decay.
"""

from __future__ import annotations

import torch
from torch import nn

ACCUMULATION_STEPS = 2


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallConvNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_bn(3, 16), nn.MaxPool2d(2), conv_bn(16, 32), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def spec() -> dict:
    images = torch.randn(16, 3, 16, 16)
    labels = torch.randint(0, 10, (16,))

    def train_step(model, batch, loss_fn, optimizer):
        images, labels = batch
        model.train()
        optimizer.zero_grad()
        total = 0.0
        for x, y in zip(images.chunk(ACCUMULATION_STEPS), labels.chunk(ACCUMULATION_STEPS)):
            loss = loss_fn(model(x), y) / ACCUMULATION_STEPS
            loss.backward()
            total += loss.item()
        optimizer.step()
        return total

    return {
        "model_factory": SmallConvNet,
        "optimizer_factory": lambda params: torch.optim.SGD(
            params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
        ),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (images, labels),
        "train_step": train_step,
    }
