"""A deliberately broken spec for the self-test workflow: the example's model and data with a training step that
never calls optimizer.zero_grad(), so gradients pile up across steps. `ci-checks train-check` must fail on it."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src"))

from ci_spec import training_spec as correct_spec  # noqa: E402


def train_step_without_zero_grad(
    model: torch.nn.Module, batch: Any, loss_fn: Callable[..., torch.Tensor], optimizer: torch.optim.Optimizer
) -> torch.Tensor:
    """The example's step with the classic bug: no optimizer.zero_grad() before backward()."""
    x, y = batch
    model.train()
    loss = loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
    optimizer.step()
    return loss.detach()


def training_spec() -> dict:
    spec = correct_spec()
    spec["train_step"] = train_step_without_zero_grad
    return spec
