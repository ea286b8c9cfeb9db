"""Bug: the loss uses the detached logits kept for the accuracy metric; only the L2 term reaches the weights (MLP).

Does not crash: the L2 regulariser still requires grad, so every parameter gets a small gradient and moves.
Should be caught by: memorization (the batch is never fit), and ideally parameter-updates (gradients come only
from a regulariser, not from the data term).
"""

from __future__ import annotations

import torch
from torch import nn

L2 = 1e-4
LOG: dict[str, float] = {}


def spec() -> dict:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(32, 20, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)

    def model_factory() -> nn.Module:
        return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))

    def train_step(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        model.train()
        optimizer.zero_grad()
        out = model(inputs)
        logits = out.detach()  # kept for the accuracy metric below
        LOG["accuracy"] = float((logits.argmax(1) == targets).float().mean())
        penalty = sum(p.pow(2).sum() for p in model.parameters())
        loss = loss_fn(logits, targets) + L2 * penalty  # BUG: should be loss_fn(out, targets)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
        "train_step": train_step,
    }
