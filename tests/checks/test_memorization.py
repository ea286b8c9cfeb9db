"""memorization: the model fits one small batch within the budget; the figures say how fast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ci_checks import synthetic_batch
from ci_checks.checks.memorization import memorization


def gaussian_nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mean, log_var = out[:, :1], out[:, 1:]
    return (0.5 * (log_var + (y - mean) ** 2 / log_var.exp())).mean()


class LogitsAndLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.pow(2).mean()


def accumulating_step(model, batch, loss_fn, optimizer):
    x, y = batch
    optimizer.zero_grad()
    total = 0.0
    for xs, ys in zip(x.chunk(4), y.chunk(4)):
        loss = loss_fn(model(xs), ys) / 4
        loss.backward()
        total += loss.detach()
    optimizer.step()
    return total


def permuted_labels_step(model, batch, loss_fn, optimizer):
    """A data pipeline bug: the labels are shuffled independently of the inputs on every step."""
    x, y = batch
    y = y[torch.randperm(len(y))]
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


PASSING = [
    pytest.param({}, "accuracy", id="classification"),
    pytest.param(
        {
            "model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)),
            "loss_fn": nn.MSELoss(),
            "batch": synthetic_batch((4,), batch_size=8),
        },
        "R^2",
        id="regression",
    ),
    pytest.param({"loss_fn": nn.CrossEntropyLoss(label_smoothing=0.1)}, "accuracy", id="label-smoothing"),
    pytest.param(
        {
            "model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)),
            "loss_fn": gaussian_nll,
            "batch": synthetic_batch((4,), batch_size=8),
        },
        "loss",
        id="loss-goes-negative",
    ),
    pytest.param({"train_step": accumulating_step}, "accuracy", id="gradient-accumulation"),
    pytest.param(
        {"model_factory": LogitsAndLoss, "loss_fn": lambda out, y: F.cross_entropy(out[0], y) + 0.01 * out[1]},
        "accuracy",
        id="logits-loss-tuple",
    ),
    pytest.param(
        {
            "model_factory": lambda: nn.Sequential(
                nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
            )
        },
        "accuracy",
        id="batchnorm-dropout",
    ),
]


@pytest.mark.parametrize(("overrides", "measure"), PASSING)
def test_passes(make_spec, overrides, measure):
    result = memorization(make_spec(**overrides))
    assert result.status == "pass", [f.message for f in result.findings]
    assert result.figures["measure"] == measure
    assert result.figures["stop_reason"] == "memorized"
    steps = result.figures["steps_to_memorize"]
    assert 1 <= steps <= result.figures["steps_run"] == len(result.series["loss"])
    assert result.summary.startswith(f"memorized in {steps} steps")


FAILING = [
    pytest.param(
        {"train_step": permuted_labels_step},
        "targets that change between steps",
        60,
        "step budget",
        id="labels-permuted",
    ),
    # Runs that cannot learn stop early, once the other checks have the steps they need (10 by default).
    pytest.param(
        {"optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.0)},
        "the learning rate is 0",
        10,
        "no parameter changes",
        id="lr-zero",
    ),
    pytest.param(
        {"optimizer_factory": lambda p: torch.optim.SGD(p, lr=1e6)},
        "exploding learning rate",
        10,
        "non-finite loss",
        id="exploding-lr",
    ),
]


@pytest.mark.parametrize(("overrides", "hint", "steps", "stop"), FAILING)
def test_fails_within_the_budget(make_spec, overrides, hint, steps, stop):
    result = memorization(make_spec(**overrides))
    assert result.status == "fail"
    (finding,) = result.findings
    assert finding.message.startswith(f"memorization: did not memorize one batch in {steps} steps")
    assert hint in finding.message
    assert result.figures["steps_to_memorize"] is None
    assert result.figures["stop_reason"] == stop


def test_running_out_of_time_while_learning_is_inconclusive(make_spec):
    result = memorization(make_spec(), settings={"max-seconds": 0.0, "target-loss": 1e-9})
    assert result.status == "warn"
    assert "inconclusive" in result.findings[0].message
    assert result.figures["stop_reason"] == "time budget"


def test_target_loss_setting(make_spec):
    assert memorization(make_spec(), settings={"target-loss": 1e-9, "max-steps": 15}).status == "fail"
    result = memorization(make_spec(), settings={"target-loss": 0.5})
    assert result.status == "pass" and result.figures["measure"] == "loss"


def test_time_budget_stops_training(make_spec):
    spec = make_spec(train_step=permuted_labels_step)
    result = memorization(spec, settings={"max-seconds": 0.0, "max-steps": 10_000})
    # The wall-clock cap is a safety cap: reaching it is inconclusive, never a verdict.
    assert result.status == "warn"
    assert "inconclusive: the 0 s safety cap stopped the run at step 10" in result.findings[0].message
    assert result.figures["stop_reason"] == "time budget"
    assert result.figures["steps_run"] == 10  # still long enough for the other checks' windows


def scheduled(step_size: int, gamma: float, lr: float = 0.3):
    """A spec whose step also steps a StepLR every batch, as CNN examples do: setup builds both."""
    schedulers: dict[int, torch.optim.lr_scheduler.StepLR] = {}

    def setup():
        model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        schedulers[id(optimizer)] = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
        return model, optimizer

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        model.train()
        optimizer.zero_grad()
        loss = F.nll_loss(F.log_softmax(model(x), dim=1), y)
        loss.backward()
        optimizer.step()
        schedulers[id(optimizer)].step()
        return loss.item()

    return {"setup": setup, "train_step": train_step, "model_factory": None, "optimizer_factory": None}


def test_a_scheduler_that_decays_the_learning_rate_to_zero_is_a_stall_with_that_cause(make_spec):
    spec = make_spec(**scheduled(step_size=1, gamma=0.1), batch=synthetic_batch((4,), batch_size=32, num_classes=3))
    result = memorization(spec, settings={"max-steps": 500, "patience": 50})
    assert result.status == "fail"
    (finding,) = result.findings
    assert finding.message.startswith("memorization: stalled since step ")
    assert "the learning rate decayed to" in finding.message and "scheduler" in finding.message
    assert result.figures["stop_reason"] == "stalled"
    # Stopped by steps: the best step plus the patience, far before the step budget.
    assert result.figures["steps_run"] == result.figures["best_step"] + 50


def test_a_sane_scheduler_memorizes(make_spec):
    spec = make_spec(**scheduled(step_size=100, gamma=0.5), batch=synthetic_batch((4,), batch_size=32, num_classes=3))
    result = memorization(spec, settings={"max-steps": 500})
    assert result.status == "pass", result.findings


def test_a_learning_rate_too_high_stalls_with_an_oscillating_loss(make_spec):
    spec = make_spec(optimizer_factory=lambda p: torch.optim.SGD(p, lr=10.0))
    result = memorization(spec, settings={"max-steps": 400, "patience": 40})
    assert result.status == "fail"
    assert result.figures["stop_reason"] in ("stalled", "non-finite loss")
    assert "learning rate" in result.findings[0].message


def test_the_verdict_does_not_depend_on_the_wall_clock(make_spec, monkeypatch):
    """A machine 1000x slower (every perf_counter call 1 s later) gives the same steps and verdict."""
    import time

    spec = scheduled(step_size=1, gamma=0.1)
    fast = memorization(make_spec(**spec), settings={"patience": 30})
    clock = iter(range(0, 10**7))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    slow = memorization(make_spec(**scheduled(step_size=1, gamma=0.1)), settings={"patience": 30, "max-seconds": 1e6})
    assert (slow.status, slow.figures["steps_run"]) == (fast.status, fast.figures["steps_run"])
    assert slow.findings[0].message.split(" - ")[1] == fast.findings[0].message.split(" - ")[1]
