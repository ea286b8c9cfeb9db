"""loss-decreases: the loss is lower after the first steps than at the start."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ci_checks import synthetic_batch
from ci_checks.checks.loss_decreases import loss_decreases


def gaussian_nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mean, log_var = out[:, :1], out[:, 1:]
    return (0.5 * (log_var + (y - mean) ** 2 / log_var.exp())).mean()


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="clean"),
        pytest.param({"loss_fn": nn.CrossEntropyLoss(label_smoothing=0.2)}, id="label-smoothing"),
        pytest.param(
            {
                "model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)),
                "loss_fn": gaussian_nll,
                "batch": synthetic_batch((4,), batch_size=8),
            },
            id="loss-goes-negative",
        ),
        pytest.param(
            {"model_factory": lambda: nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))},
            id="dropout-noise",
        ),
    ],
)
def test_passes(make_spec, overrides):
    result = loss_decreases(make_spec(**overrides))
    assert result.status == "pass", [f.message for f in result.findings]
    assert result.figures["last_loss"] < result.figures["first_loss"]


def test_negative_loss_really_goes_below_zero(make_spec):
    spec = make_spec(
        model_factory=lambda: nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)),
        loss_fn=gaussian_nll,
        batch=synthetic_batch((4,), batch_size=8),
    )
    result = loss_decreases(spec)
    assert result.figures["first_loss"] > 0 > min(result.series["loss"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.0)},
            "no parameter changed in the first 10 steps",
            id="lr-zero",
        ),
        pytest.param(
            {"optimizer_factory": lambda p: torch.optim.SGD(p, lr=1e6)}, "the loss became non-finite", id="exploding-lr"
        ),
        pytest.param(
            {"optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.5, maximize=True)},
            "the loss rose over the first 10 steps",
            id="gradient-ascent",
        ),
    ],
)
def test_fails(make_spec, overrides, message):
    result = loss_decreases(make_spec(**overrides))
    assert result.status == "fail"
    assert message in result.findings[0].message


def test_window_is_a_setting(make_spec):
    result = loss_decreases(make_spec(), settings={"steps": 4})
    assert result.figures["steps"] == 4 and len(result.series["loss"]) == 4


def test_skips_with_fewer_than_two_steps(make_spec):
    result = loss_decreases(make_spec(), settings={"steps": 1})
    assert result.status == "skip"
