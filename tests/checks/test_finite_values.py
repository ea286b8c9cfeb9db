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


class SpareBuffer(nn.Module):
    """A classifier with a parameter its forward never reads (loss and outputs stay finite when it goes bad)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.spare = nn.Parameter(torch.zeros(5), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def corrupts_spare_at(step_no: int):
    calls = {"n": 0}

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        calls["n"] += 1
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if calls["n"] == step_no:
            with torch.no_grad():
                model.spare[2] = float("nan")
        return loss.detach()

    return train_step


@pytest.mark.parametrize(
    ("bad_at", "message"),
    [
        pytest.param(4, "in parameter spare at step 4 ", id="first-steps-every-step"),
        pytest.param(13, "in parameter spare by step 15 (finite at step 12)", id="later-on-a-schedule"),
    ],
)
def test_a_parameter_that_goes_bad_later_is_caught_on_the_schedule(make_spec, bad_at, message):
    """The tensors are checked at every one of the first 10 steps, then every 3rd: a NaN that stays is still caught,
    and the finding says between which checks it appeared."""
    from ci_checks.checks import finite_values as module
    from ci_checks.engine.harness import Harness
    from ci_checks.engine.session import RunNeeds, Session

    harness = Harness(make_spec(model_factory=SpareBuffer, train_step=corrupts_spare_at(bad_at)), device="cpu")
    result = module.check(Session(harness, settings={}, needs={"finite-values": RunNeeds(min_steps=20)}))
    assert result.status == "fail"
    assert message in result.findings[0].message
