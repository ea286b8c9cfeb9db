"""The ci-checks training spec of the example: the real model, the real step, one real batch."""

from __future__ import annotations

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src"))

from model import SpiralNet  # noqa: E402
from prepare import spirals  # noqa: E402
from train import load_checkpoint, make_optimizer, save_checkpoint, train_step  # noqa: E402


def training_spec() -> dict:
    x, y = spirals(n_samples=96, classes=3, noise=0.2, seed=0)
    batch = torch.from_numpy(x[:32]), torch.from_numpy(y[:32])
    return {
        "model_factory": lambda: SpiralNet(hidden=64, dropout=0.1),
        "optimizer_factory": lambda params: make_optimizer(params, lr=0.01, weight_decay=1e-4),
        "loss_fn": torch.nn.CrossEntropyLoss(),
        "batch": batch,
        "train_step": train_step,
        "save_checkpoint": save_checkpoint,
        "load_checkpoint": load_checkpoint,
    }
