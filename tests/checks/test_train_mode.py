"""train-mode: the step trains in training mode, BatchNorm statistics move, state lives in registered buffers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn


from ci_checks.checks.train_mode import train_mode


def dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def batchnorm_mlp(momentum: float = 0.1) -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16, momentum=momentum), nn.ReLU(), nn.Linear(16, 3))


class PlainCounter(nn.Module):
    """A running statistic kept as a plain tensor attribute instead of a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        self.seen = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen = self.seen + x.shape[0]
        return self.net(x)


class PlainConstant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        self.scale = torch.ones(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.scale


class RegisteredCounter(PlainCounter):
    def __init__(self) -> None:
        super().__init__()
        del self.seen
        self.register_buffer("seen", torch.zeros(()))


def step_with_validation_pass(model, batch, loss_fn, optimizer):
    """Evaluates first, then switches back to train() before the update: correct."""
    x, y = batch
    model.eval()
    with torch.no_grad():
        model(x)
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def trains_a_copy(model, batch, loss_fn, _optimizer):
    x, y = batch
    other = copy.deepcopy(model)
    optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    loss = loss_fn(other(x), y)
    loss.backward()
    optimizer.step()
    return loss


PASSING = [
    pytest.param(lambda step: {}, id="mlp"),
    pytest.param(lambda step: {"model_factory": dropout_mlp, "train_step": step()}, id="dropout-user-step"),
    pytest.param(lambda step: {"model_factory": batchnorm_mlp}, id="batchnorm-updates"),
    pytest.param(
        lambda step: {"model_factory": dropout_mlp, "train_step": step_with_validation_pass}, id="eval-pass-then-train"
    ),
    pytest.param(lambda step: {"train_step": step(mode="eval")}, id="eval-is-harmless-without-dropout-or-batchnorm"),
    pytest.param(lambda step: {"model_factory": RegisteredCounter}, id="state-in-a-buffer"),
    pytest.param(
        lambda step: {"model_factory": lambda: batchnorm_mlp(momentum=0.0), "frozen": ["1"]},
        id="declared-frozen-batchnorm",
    ),
]


@pytest.mark.parametrize("overrides", PASSING)
def test_passes(make_spec, make_step, overrides):
    result = train_mode(make_spec(**overrides(make_step)))
    assert result.status == "pass", [f.message for f in result.findings]
    assert result.figures["forwards"] > 0


FAILING = [
    pytest.param(
        lambda step: {"model_factory": dropout_mlp, "train_step": step(mode="eval")},
        "error",
        "forward passes in the training step ran in eval mode",
        id="step-calls-eval",
    ),
    pytest.param(
        lambda step: {"model_factory": batchnorm_mlp, "train_step": step(mode="eval")},
        "error",
        "call model.train() in the step",
        id="step-calls-eval-batchnorm",
    ),
    pytest.param(
        lambda step: {"model_factory": PlainCounter},
        "error",
        "seen is a plain tensor attribute that training changes",
        id="plain-tensor-state",
    ),
    pytest.param(
        lambda step: {"train_step": trains_a_copy}, "error", "never called the model it was given", id="trains-a-copy"
    ),
    pytest.param(
        lambda step: {"model_factory": PlainConstant},
        "warning",
        "scale is a plain tensor attribute: .to(device) does not move it",
        id="plain-tensor-constant",
    ),
    pytest.param(
        lambda step: {"model_factory": lambda: batchnorm_mlp(momentum=0.0)},
        "warning",
        "BatchNorm 1 did not update its running statistics",
        id="batchnorm-momentum-zero",
    ),
]


@pytest.mark.parametrize(("overrides", "severity", "message"), FAILING)
def test_flags(make_spec, make_step, overrides, severity, message):
    result = train_mode(make_spec(**overrides(make_step)))
    assert result.status == {"error": "fail", "warning": "warn"}[severity]
    assert any(f.severity == severity and message in f.message for f in result.findings), [
        f.message for f in result.findings
    ]


def test_eval_mode_finding_counts_the_forwards(make_spec, make_step):
    result = train_mode(make_spec(model_factory=dropout_mlp, train_step=make_step(mode="eval")))
    assert result.figures["eval_forwards"] == result.figures["forwards"] >= 2  # one per step, every step counted
