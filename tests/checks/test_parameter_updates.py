"""parameter-updates: every trainable tensor gets a gradient and moves in one step; declared-frozen ones do not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ci_checks.checks import run_checks
from ci_checks.checks.parameter_updates import parameter_updates


class PartlyFrozen(nn.Module):
    """An embedding-like first layer frozen on purpose, as when fine-tuning a head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 16)
        self.head = nn.Linear(16, 3)
        self.emb.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.emb(x)))


class UnusedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 3)  # built, never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def manual_sgd_step(model, batch, loss_fn, optimizer):
    """Ignores the optimizer it is given and updates the weights by hand."""
    x, y = batch
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.5 * p.grad
    return loss


def accumulating_step(model, batch, loss_fn, optimizer):
    """Gradient accumulation: two micro-batches, one optimizer step."""
    x, y = batch
    optimizer.zero_grad()
    total = 0.0
    for xs, ys in zip(x.chunk(2), y.chunk(2)):
        loss = loss_fn(model(xs), ys) / 2
        loss.backward()
        total += loss.detach()
    optimizer.step()
    return total


def zero_grad_last_step(set_to_none: bool):
    """backward, step, then zero_grad: the gradients are cleared for the next step, not before this one."""

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=set_to_none)
        return loss

    return train_step


def detached_step(model, batch, loss_fn, optimizer):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x).detach(), y)
    loss.backward()
    optimizer.step()
    return loss


def _stale_setup():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model[2] = nn.Linear(16, 3)
    return model, optimizer


PASSING = [
    pytest.param(lambda mlp, step: {}, id="clean"),
    pytest.param(lambda mlp, step: {"train_step": step()}, id="user-step"),
    pytest.param(lambda mlp, step: {"train_step": manual_sgd_step}, id="manual-update-ignores-optimizer"),
    pytest.param(lambda mlp, step: {"train_step": accumulating_step}, id="gradient-accumulation"),
    pytest.param(lambda mlp, step: {"train_step": zero_grad_last_step(True)}, id="zero-grad-after-step"),
    pytest.param(lambda mlp, step: {"train_step": zero_grad_last_step(False)}, id="zero-grad-after-step-to-zeros"),
    pytest.param(lambda mlp, step: {"model_factory": PartlyFrozen, "frozen": ["emb"]}, id="declared-frozen-module"),
    pytest.param(
        lambda mlp, step: {"model_factory": PartlyFrozen, "frozen": "emb.*"}, id="declared-frozen-glob-string"
    ),
    pytest.param(
        lambda mlp, step: {
            "model_factory": lambda: nn.Sequential(mlp(), nn.Softmax(-1)),
            "loss_fn": lambda out, y: nn.functional.nll_loss(out.log(), y),
        },
        id="probabilities-with-nll",
    ),
]


@pytest.mark.parametrize("overrides", PASSING)
def test_passes(make_spec, mlp, make_step, overrides):
    result = parameter_updates(make_spec(**overrides(mlp, make_step)))
    assert result.status == "pass", [f.message for f in result.findings]
    assert result.figures["updated"] == result.figures["trainable"] > 0


def test_declared_frozen_layer_is_counted_not_flagged(make_spec):
    result = parameter_updates(make_spec(model_factory=PartlyFrozen, frozen=["emb"]))
    assert result.figures["frozen"] == 2
    assert result.summary == "2/2 trainable tensors updated, 2 frozen"


FAILING = [
    pytest.param(
        lambda: {"model_factory": PartlyFrozen},
        "requires_grad=False but not declared frozen: emb.weight, emb.bias",
        id="frozen-by-accident",
    ),
    pytest.param(
        lambda: {"optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.0)},
        "did not change after one step: 0.weight, 0.bias, 2.weight, 2.bias - the learning rate is 0",
        id="lr-zero",
    ),
    pytest.param(
        lambda: {"setup": _stale_setup, "model_factory": None, "optimizer_factory": None},
        "the optimizer holds 2 parameter tensor(s) that are not in the model",
        id="stale-optimizer-params",
    ),
    pytest.param(
        lambda: {"model_factory": UnusedLayer},
        "2 of 4 parameter tensors received a gradient: aux.weight, aux.bias - not connected to the loss",
        id="layer-not-connected-to-loss",
    ),
    pytest.param(
        lambda: {"frozen": ["0"]},
        "declared frozen but changed in one step: 0.weight, 0.bias",
        id="declared-frozen-but-trained",
    ),
    pytest.param(
        lambda: {"train_step": detached_step},
        "the loss is detached from the model",
        id="detached-loss",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), FAILING)
def test_fails(make_spec, overrides, message):
    result = parameter_updates(make_spec(**overrides()))
    assert result.status == "fail"
    assert any(message in f.message for f in result.findings), [f.message for f in result.findings]
    assert all(f.message.startswith("parameter-updates: ") for f in result.findings)


def test_stale_optimizer_names_the_parameters_left_out(make_spec):
    result = parameter_updates(make_spec(setup=_stale_setup, model_factory=None, optimizer_factory=None))
    (stale,) = [f.details["parameters"] for f in result.findings if "not in the optimizer" in f.message]
    assert stale == ["2.weight", "2.bias"]


def test_findings_point_at_the_user_step(make_spec):
    result = parameter_updates(make_spec(model_factory=PartlyFrozen, train_step=manual_sgd_step))
    assert result.findings
    location = result.findings[0].location
    assert location is not None and location.file.endswith("test_parameter_updates.py")
    # The frozen parameter has no .grad: the line of the step that raised, inside the user's function.
    first = manual_sgd_step.__code__.co_firstlineno
    assert first < location.line < first + 10
    assert "the training step raised TypeError at step 1" in result.findings[0].message


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(lambda p: torch.optim.Adam(p, lr=0.05), id="adam"),
        pytest.param(lambda p: torch.optim.SGD(p, lr=0.1), id="sgd"),
    ],
)
def test_missing_zero_grad_is_reported_with_the_step(make_spec, make_step, optimizer):
    """Adam still memorizes with stale gradients, so the stale-gradient detector is what catches it."""
    result = parameter_updates(make_spec(train_step=make_step(zero_grad=False), optimizer_factory=optimizer))
    assert result.status == "fail"
    (finding,) = result.findings
    assert "missing zero_grad()" in finding.message
    assert finding.details["step"] == 2
    assert finding.location is not None and finding.location.file.endswith("conftest.py")  # the user's step


def test_missing_zero_grad_is_reported_once_in_the_suite(make_spec, make_step):
    report = run_checks(
        make_spec(train_step=make_step(zero_grad=False)), ["parameter-updates", "loss-decreases", "memorization"]
    )
    flagged = [c.check for c in report.checks for f in c.findings if "zero_grad" in f.message]
    assert flagged == ["parameter-updates"]


def test_stale_gradient_detector_sees_missing_zero_grad(make_spec, make_step):
    """The harness half of the above: the observation is there, only the reporting is missing."""
    from ci_checks.engine.harness import Harness

    assert Harness(make_spec(train_step=make_step(zero_grad=False))).run(max_steps=3).stale_grad is not None
    assert Harness(make_spec(train_step=accumulating_step)).run(max_steps=3).stale_grad is None
    assert Harness(make_spec(train_step=manual_sgd_step)).run(max_steps=3).stale_grad is None


def manual_data_update(zero_grad: bool):
    """The classic language-model loop: manual SGD through p.data, with model.zero_grad() at the start."""

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        if zero_grad:
            model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-0.5)
        return loss.item()

    return train_step


def test_missing_zero_grad_is_found_for_manual_updates_through_data(make_spec):
    assert parameter_updates(make_spec(train_step=manual_data_update(True))).status == "pass"
    result = parameter_updates(make_spec(train_step=manual_data_update(False)))
    assert result.status == "fail"
    assert "missing zero_grad()" in result.findings[0].message


def zero_grad_below_backward(model, batch, loss_fn, optimizer):
    x, y = batch
    model.train()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), id="sgd"),
        # weight decay moves every parameter without a gradient: "changed" alone would pass it
        pytest.param(lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1), id="adamw"),
    ],
)
def test_gradients_cleared_between_backward_and_step_fail_with_that_cause(make_spec, optimizer):
    model = lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))  # noqa: E731
    spec = make_spec(model_factory=model, train_step=zero_grad_below_backward, optimizer_factory=optimizer)
    result = parameter_updates(spec)
    assert result.status == "fail"
    (finding,) = [f for f in result.findings if f.severity == "error"]
    assert "gradients were cleared between backward() and optimizer.step()" in finding.message
    assert finding.details["parameters"] == ["0.weight", "0.bias", "3.weight", "3.bias"]


def test_one_finding_per_cause_lists_the_parameters(make_spec):
    """A loss detached from the model's output (a regulariser keeps it differentiable): one finding, not one per
    parameter."""

    def step(model, batch, loss_fn, optimizer):
        x, y = batch
        optimizer.zero_grad()
        out = model(x)
        loss = loss_fn(out.detach(), y) + 0.0 * sum(p.sum() for p in model[0].parameters())
        loss.backward()
        optimizer.step()
        return loss

    deep = lambda: nn.Sequential(*(nn.Linear(4, 4) for _ in range(6)), nn.Linear(4, 3))  # noqa: E731
    result = parameter_updates(make_spec(model_factory=deep, train_step=step))
    errors = [f for f in result.findings if f.severity == "error"]
    no_grad = [f for f in errors if "received a gradient" in f.message]
    assert len(no_grad) == 1 and len(no_grad[0].details["parameters"]) == 12
    assert "and 6 more" in no_grad[0].message
