"""checkpoint: save, restore into fresh objects, continue; it must match the uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ci_checks.checks import run_checks
from ci_checks.checks.checkpoint import checkpoint


def save_everything(model, optimizer, path):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)


def load_everything(model, optimizer, path):
    state = torch.load(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


def save_model_only(model, optimizer, path):
    torch.save({"model": model.state_dict()}, path)


def load_model_only(model, optimizer, path):
    model.load_state_dict(torch.load(path)["model"])


def load_nothing(model, optimizer, path):
    torch.load(path)


def save_raises(model, optimizer, path):
    raise OSError("disk full")


class Counter(nn.Module):
    """Keeps a step count as a plain attribute: the state_dict, and so the checkpoint, loses it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        self.register_buffer("steps", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps += 1
        return self.net(x) * (1.0 + 0.01 * self.steps)


PASSING = [
    pytest.param({}, id="default-torch-save"),
    pytest.param({"save_checkpoint": save_everything, "load_checkpoint": load_everything}, id="user-save-load"),
    pytest.param(
        {
            "save_checkpoint": save_model_only,
            "load_checkpoint": load_model_only,
            "optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.1),
        },
        id="stateless-sgd-needs-no-optimizer-state",
    ),
    pytest.param({"model_factory": Counter}, id="buffer-in-state-dict"),
]


@pytest.mark.parametrize("overrides", PASSING)
def test_passes(make_spec, overrides):
    result = checkpoint(make_spec(**overrides))
    assert result.status == "pass", [f.message for f in result.findings]
    assert result.figures["max_loss_diff"] == 0.0
    assert result.figures["max_param_diff"] == 0.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"save_checkpoint": save_model_only, "load_checkpoint": load_model_only},
            "optimizer state (momentum, Adam moments, step count)",
            id="adam-state-dropped",
        ),
        pytest.param(
            {
                "save_checkpoint": save_model_only,
                "load_checkpoint": load_model_only,
                "optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
            },
            "optimizer state (momentum, Adam moments, step count)",
            id="momentum-dropped",
        ),
        pytest.param(
            {"save_checkpoint": save_everything, "load_checkpoint": load_nothing},
            "the restored model differs from the saved one",
            id="model-not-loaded",
        ),
        pytest.param({"save_checkpoint": save_raises}, "save_checkpoint raised OSError: disk full", id="save-raises"),
    ],
)
def test_fails(make_spec, overrides, message):
    result = checkpoint(make_spec(**overrides))
    assert result.status == "fail"
    (finding,) = result.findings
    assert finding.message.startswith("checkpoint: ")
    assert message in finding.message


def test_nan_training_is_not_reported_as_a_checkpoint_problem(make_spec):
    """An exploding run is finite-values' finding; NaN losses that match the resumed run's NaNs are a match."""
    spec = make_spec(optimizer_factory=lambda p: torch.optim.SGD(p, lr=1e6))
    report = run_checks(spec, ["finite-values", "checkpoint"])
    assert [c.status for c in report.checks] == ["fail", "pass"], [f.message for c in report.checks for f in c.findings]


def test_checkpoint_file_is_removed(make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    checkpoint(make_spec())
    assert not list(tmp_path.glob("ci-checks-ckpt-*"))


def _step(*, zero_grad=True, rng=None):
    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        if rng is not None:
            x = x + torch.from_numpy(rng().normal(scale=0.05, size=tuple(x.shape)).astype("float32"))
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


@pytest.mark.parametrize(
    ("overrides", "culprit"),
    [
        pytest.param(
            lambda: {"train_step": _step(rng=np.random.default_rng)}, "reproducibility", id="unseeded-randomness"
        ),
        pytest.param(lambda: {"train_step": _step(zero_grad=False)}, "parameter-updates", id="missing-zero-grad"),
    ],
)
def test_other_bugs_are_not_blamed_on_the_checkpoint(make_spec, overrides, culprit):
    report = run_checks(make_spec(**overrides()), [culprit, "checkpoint"])
    culprit_result, checkpoint_result = report.checks
    assert culprit_result.status == "fail"
    assert checkpoint_result.status == "skip", [f.message for f in checkpoint_result.findings]
    assert culprit in checkpoint_result.summary


def with_scheduler(save_scheduler: bool | None):
    """A step that steps a StepLR each batch; save/load hooks that keep the scheduler or not (None: the default)."""
    schedulers: dict[int, torch.optim.lr_scheduler.StepLR] = {}

    def setup():
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        schedulers[id(optimizer)] = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        return model, optimizer

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        schedulers[id(optimizer)].step()
        return loss

    def save(model, optimizer, path):
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        if save_scheduler:
            state["scheduler"] = schedulers[id(optimizer)].state_dict()
        torch.save(state, path)

    def load(model, optimizer, path):
        state = torch.load(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:
            schedulers[id(optimizer)].load_state_dict(state["scheduler"])

    spec = {"setup": setup, "train_step": train_step, "model_factory": None, "optimizer_factory": None}
    if save_scheduler is not None:
        spec.update(save_checkpoint=save, load_checkpoint=load)
    return spec


def test_a_scheduler_the_default_checkpoint_cannot_hold_skips_with_the_reason(make_spec):
    result = checkpoint(make_spec(**with_scheduler(None)))
    assert result.status == "skip"
    assert "learning-rate scheduler" in result.summary and "give save_checkpoint/load_checkpoint" in result.summary


def test_a_scheduler_is_checked_through_the_users_own_checkpoint(make_spec):
    assert checkpoint(make_spec(**with_scheduler(True))).status == "pass"
    result = checkpoint(make_spec(**with_scheduler(False)))
    assert result.status == "fail" and "LR scheduler" in result.findings[0].message
