"""finite-values: no NaN/Inf anywhere in training; the first tensor where one appears is named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ci_checks.checks.finite_values import finite_values


class SqrtOfNegative(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).sqrt()  # NaN wherever the logit is negative


def nan_after(step_no: int):
    """A step whose loss is fine until step_no, then log(0) slips in."""
    state = {"calls": 0}

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        state["calls"] += 1
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        if state["calls"] >= step_no:
            loss = loss + torch.log(torch.zeros(()))
        loss.backward()
        optimizer.step()
        return loss

    return train_step


def test_passes(make_spec):
    result = finite_values(make_spec())
    assert result.status == "pass"
    assert result.figures["steps_watched"] >= 10
    assert result.summary.startswith("all finite over")


def test_passes_with_gradient_clipping_at_a_high_lr(make_spec):
    def clipped(model, batch, loss_fn, optimizer):
        x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    spec = make_spec(train_step=clipped, optimizer_factory=lambda p: torch.optim.SGD(p, lr=1.0))
    assert finite_values(spec).status == "pass"


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        pytest.param({"optimizer_factory": lambda p: torch.optim.SGD(p, lr=1e6)}, "model output", id="exploding-lr"),
        pytest.param({"model_factory": SqrtOfNegative}, "model output", id="sqrt-of-negative"),
    ],
)
def test_fails_and_names_the_tensor(make_spec, overrides, where):
    result = finite_values(make_spec(**overrides))
    assert result.status == "fail"
    (finding,) = result.findings
    assert f"NaN/Inf first appeared in {where}" in finding.message
    assert "learning rate too high" in finding.message
    assert finding.details["step"] == result.figures["first_nonfinite_step"]


def test_names_the_step_where_the_loss_went_bad(make_spec):
    result = finite_values(make_spec(train_step=nan_after(4)))
    assert result.status == "fail"
    assert result.figures["first_nonfinite_step"] == 4
    assert result.findings[0].details["tensor"] == "the loss"
