"""loss-at-init: the fresh model's loss is plausible for the task, and no double softmax/sigmoid."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ci_checks import synthetic_batch
from ci_checks.checks.loss_at_init import loss_at_init


class LogitsAndLoss(nn.Module):
    """Returns (logits, auxiliary loss), as many research models do."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.pow(2).mean()


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hidden": x, "logits": self.net(x)}


class GaussianHead(nn.Module):
    """Predicts a mean and a log-variance; its negative log-likelihood goes below zero as it fits."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def gaussian_nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mean, log_var = out[:, :1], out[:, 1:]
    return (0.5 * (log_var + (y - mean) ** 2 / log_var.exp())).mean()


def scaled(factor: float):
    def factory() -> nn.Module:
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        with torch.no_grad():
            model[2].weight.mul_(factor)
        return model

    return factory


PASSING = [
    pytest.param({}, id="cross-entropy"),
    pytest.param({"loss_fn": nn.CrossEntropyLoss(label_smoothing=0.1)}, id="label-smoothing"),
    pytest.param(
        {"model_factory": LogitsAndLoss, "loss_fn": lambda out, y: F.cross_entropy(out[0], y) + 0.01 * out[1]},
        id="logits-loss-tuple",
    ),
    pytest.param(
        {"model_factory": DictOutput, "loss_fn": lambda out, y: F.cross_entropy(out["logits"], y)}, id="dict-output"
    ),
    pytest.param(
        {"model_factory": lambda: nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(-1)), "loss_fn": nn.NLLLoss()},
        id="log-softmax-with-nll",
    ),
    pytest.param(
        {
            "model_factory": lambda: nn.Linear(4, 1),
            "loss_fn": nn.BCEWithLogitsLoss(),
            "batch": (torch.randn(8, 4), torch.tensor([[0.0], [1.0]] * 4)),
        },
        id="binary-logits",
    ),
    pytest.param(
        {"model_factory": GaussianHead, "loss_fn": gaussian_nll, "batch": synthetic_batch((4,), batch_size=8)},
        id="gaussian-nll-no-expectation",
    ),
]


@pytest.mark.parametrize("overrides", PASSING)
def test_passes(make_spec, overrides):
    result = loss_at_init(make_spec(**overrides))
    assert result.status == "pass", [f.message for f in result.findings]
    assert math.isfinite(result.figures["initial_loss"])


def test_expected_loss_is_log_num_classes(make_spec):
    result = loss_at_init(make_spec())
    assert result.figures["expected_loss"] == pytest.approx(math.log(3))
    assert "for classification, 3 classes" in result.summary


FAILING = [
    pytest.param(
        {"loss_fn": lambda out, y: F.cross_entropy(out.softmax(-1), y)},
        "the loss equals cross_entropy(softmax(outputs)) - double softmax",
        id="double-softmax-in-loss",
    ),
    pytest.param(
        {"model_factory": lambda: nn.Sequential(nn.Linear(4, 3), nn.Softmax(-1))},
        "the model outputs probabilities (rows sum to 1)",
        id="double-softmax-model-outputs-probabilities",
    ),
    pytest.param(
        {
            "model_factory": lambda: nn.Sequential(nn.Linear(4, 1), nn.Sigmoid()),
            "loss_fn": nn.BCEWithLogitsLoss(),
            "batch": (torch.randn(8, 4), torch.tensor([[0.0], [1.0]] * 4)),
        },
        "double sigmoid",
        id="double-sigmoid",
    ),
    pytest.param(
        {"model_factory": scaled(300.0)}, "output layer initialised with large weights", id="huge-init-logits"
    ),
    pytest.param({"loss_fn": nn.CrossEntropyLoss(reduction="sum")}, "not averaged over the batch", id="sum-reduction"),
    pytest.param(
        {"loss_fn": lambda out, y: F.cross_entropy(out, y) / 0.0},
        "non-finite before any update",
        id="non-finite-at-init",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), FAILING)
def test_fails(make_spec, overrides, message):
    result = loss_at_init(make_spec(**overrides))
    assert result.status == "fail"
    assert any(message in f.message for f in result.findings), [f.message for f in result.findings]


def test_moderately_off_warns(make_spec):
    result = loss_at_init(make_spec(model_factory=scaled(12.0)))
    assert result.status == "warn", result.figures
    assert 2.0 < result.figures["ratio"] <= 4.0


def test_expected_loss_setting_overrides_the_guess(make_spec):
    result = loss_at_init(make_spec(), settings={"expected-loss": 20.0})
    assert result.status == "fail"
    assert result.figures["expected_loss"] == 20.0
