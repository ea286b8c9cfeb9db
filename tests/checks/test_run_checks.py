"""The suite: the hard cases pass every check, and each classic bug is caught by the check meant for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ci_checks import synthetic_batch
from ci_checks.checks import CHECKS, run_checks, training_checks


def mlp(out: int = 3, *layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 16), *layers, nn.ReLU(), nn.Linear(16, out))


class LogitsAndLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x):
        logits = self.net(x)
        return logits, logits.pow(2).mean()


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x):
        return {"loss": self.net(x).sum(), "logits": self.net(x)}


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        return self.head(self.emb(ids).mean(1))


class TimeMajor(nn.Module):
    """[T, N, F] -> [T, N, C], mixing over time (dim 0) only."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x + x.mean(0, keepdim=True))


class PartlyFrozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 32)
        self.head = nn.Linear(32, 3)
        self.emb.requires_grad_(False)

    def forward(self, x):
        return self.head(torch.relu(self.emb(x)))


class ReshapeMixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x):
        return self.net(x.t().reshape(x.shape[0], -1))


class PlainCounter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()
        self.seen = torch.zeros(())

    def forward(self, x):
        if self.training:
            self.seen = self.seen + 1
        return self.net(x)


def gaussian_nll(out, y):
    mean, log_var = out[:, :1], out[:, 1:]
    return (0.5 * (log_var + (y - mean) ** 2 / log_var.exp())).mean()


def manual_step(model, batch, loss_fn, optimizer):
    x, y = batch
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.5 * p.grad
    return loss


def accumulating_step(model, batch, loss_fn, optimizer):
    x, y = batch
    model.train()
    optimizer.zero_grad()
    total = 0.0
    for xs, ys in zip(x.chunk(2), y.chunk(2)):
        loss = loss_fn(model(xs), ys) / 2
        loss.backward()
        total += loss.detach()
    optimizer.step()
    return total


def user_step(*, zero_grad=True, detach=False, mode="train", permute=False, noise=None):
    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        getattr(model, mode)()
        if permute:
            y = y[torch.randperm(len(y))]
        if noise is not None:
            x = x + torch.from_numpy(noise().normal(scale=0.05, size=tuple(x.shape)).astype("float32"))
        if zero_grad:
            optimizer.zero_grad()
        out = model(x)
        loss = loss_fn(out.detach() if detach else out, y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


def stale_setup():
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model[2] = nn.Linear(16, 3)
    return model, optimizer


def save_model_only(model, optimizer, path):
    torch.save(model.state_dict(), path)


def load_model_only(model, optimizer, path):
    model.load_state_dict(torch.load(path))


def time_major_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 8, 4, generator=g), torch.randint(0, 3, (3, 8), generator=g)


HARD_CASES = [
    pytest.param(lambda: {"loss_fn": nn.CrossEntropyLoss(label_smoothing=0.1)}, id="label-smoothing"),
    pytest.param(
        lambda: {
            "model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)),
            "loss_fn": gaussian_nll,
            "batch": synthetic_batch((4,), batch_size=8),
        },
        id="loss-goes-negative",
    ),
    pytest.param(
        lambda: {"model_factory": Tokens, "batch": synthetic_batch((6,), batch_size=8, vocab_size=10, num_classes=3)},
        id="integer-tokens",
    ),
    pytest.param(lambda: {"model_factory": lambda: mlp(3, nn.BatchNorm1d(16))}, id="batchnorm-train-mode"),
    pytest.param(
        lambda: {
            "model_factory": TimeMajor,
            "batch": time_major_batch(),
            "batch_dim": 1,
            "loss_fn": lambda out, y: F.cross_entropy(out.reshape(-1, 3), y.reshape(-1)),
        },
        id="time-major-batch-dim-1",
    ),
    pytest.param(
        lambda: {"model_factory": LogitsAndLoss, "loss_fn": lambda out, y: F.cross_entropy(out[0], y) + 0.01 * out[1]},
        id="logits-loss-tuple",
    ),
    pytest.param(
        lambda: {"model_factory": DictOutput, "loss_fn": lambda out, y: F.cross_entropy(out["logits"], y)},
        id="dict-output",
    ),
    pytest.param(lambda: {"train_step": manual_step}, id="manual-update-ignores-optimizer"),
    pytest.param(lambda: {"model_factory": PartlyFrozen, "frozen": ["emb"]}, id="declared-frozen-layer"),
    pytest.param(
        lambda: {"train_step": accumulating_step, "model_factory": lambda: mlp(3, nn.Dropout(0.1))},
        id="gradient-accumulation",
    ),
]


@pytest.mark.parametrize("overrides", HARD_CASES)
def test_hard_cases_raise_no_false_alarm(make_spec, overrides):
    report = run_checks(make_spec(**overrides()))
    assert [c.check for c in report.checks] == list(CHECKS)
    problems = {c.check: [f.message for f in c.findings] for c in report.checks if c.status != "pass"}
    assert problems == {}
    assert report.exit_code == 0


BUGS = [
    pytest.param(lambda: {"train_step": user_step(zero_grad=False)}, "parameter-updates", id="missing-zero-grad"),
    pytest.param(lambda: {"train_step": user_step(detach=True)}, "parameter-updates", id="detached-loss"),
    pytest.param(
        lambda: {"loss_fn": lambda out, y: F.cross_entropy(out.softmax(-1), y)}, "loss-at-init", id="double-softmax"
    ),
    pytest.param(lambda: {"model_factory": PartlyFrozen}, "parameter-updates", id="frozen-by-accident"),
    pytest.param(
        lambda: {"optimizer_factory": lambda p: torch.optim.Adam(p, lr=0.0)}, "parameter-updates", id="lr-zero"
    ),
    pytest.param(
        lambda: {"optimizer_factory": lambda p: torch.optim.SGD(p, lr=1e6)}, "finite-values", id="exploding-lr"
    ),
    pytest.param(lambda: {"model_factory": ReshapeMixer}, "batch-independence", id="reshape-mixes-samples"),
    pytest.param(lambda: {"train_step": user_step(permute=True)}, "memorization", id="labels-permuted-each-step"),
    pytest.param(
        lambda: {"setup": stale_setup, "model_factory": None, "optimizer_factory": None},
        "parameter-updates",
        id="stale-optimizer-params",
    ),
    pytest.param(
        lambda: {"train_step": user_step(noise=np.random.default_rng)},
        "reproducibility",
        id="unseeded-randomness-in-step",
    ),
    pytest.param(
        lambda: {"save_checkpoint": save_model_only, "load_checkpoint": load_model_only},
        "checkpoint",
        id="checkpoint-drops-adam-state",
    ),
    pytest.param(
        lambda: {"model_factory": lambda: mlp(3, nn.Dropout(0.2)), "train_step": user_step(mode="eval")},
        "train-mode",
        id="step-calls-eval",
    ),
    pytest.param(lambda: {"model_factory": PlainCounter}, "train-mode", id="plain-tensor-state"),
]


@pytest.mark.parametrize(("overrides", "check"), BUGS)
def test_each_bug_is_caught_by_its_check(make_spec, overrides, check):
    report = run_checks(make_spec(**overrides()))
    failing = [c.check for c in report.checks if c.status == "fail"]
    assert check in failing, {c.check: c.summary for c in report.checks}
    assert report.exit_code == 1


def test_a_step_that_raises_is_reported_once(make_spec):
    report = run_checks(make_spec(train_step=user_step(detach=True)))
    statuses = {c.check: c.status for c in report.checks}
    assert statuses["parameter-updates"] == "fail"
    assert {statuses[c] for c in training_checks() - {"parameter-updates"}} == {"skip"}
    assert statuses["loss-at-init"] == statuses["batch-independence"] == "pass"  # they do not need the step
    errors = [f for c in report.checks for f in c.findings]
    assert len(errors) == 1 and "raised RuntimeError at step 1" in errors[0].message


def test_checks_share_one_training_run(make_spec):
    calls = []
    step = user_step()

    def counting_step(*args):
        calls.append(1)
        return step(*args)

    report = run_checks(make_spec(train_step=counting_step), ["memorization", "loss-decreases", "finite-values"])
    assert len(calls) == report.subject["training_steps"]


def test_only_non_training_checks_do_not_train(make_spec):
    report = run_checks(make_spec(), ["loss-at-init", "batch-independence"])
    assert "training_steps" not in report.subject
    assert report.subject["task"] == "classification, 3 classes"


def test_settings_argument_wins_over_spec_settings(make_spec):
    spec = make_spec(settings={"loss-decreases": {"steps": 4}})
    assert run_checks(spec, ["loss-decreases"]).checks[0].figures["steps"] == 4
    report = run_checks(spec, ["loss-decreases"], settings={"loss_decreases": {"steps": 6}})
    assert report.checks[0].figures["steps"] == 6


# ---------------------------------------------------------------- the user's code raising is a finding, never exit 3


def _failing_step(kind: str):
    hidden: dict[str, torch.Tensor] = {}

    def step(model, batch, loss_fn, optimizer):
        x, y = batch
        optimizer.zero_grad()
        if kind == "inplace":
            h = torch.sigmoid(model[0](x))
            h.mul_(2)  # sigmoid saved its output for backward
            loss = loss_fn(model[2](h), y)
        elif kind == "backward-twice":
            # a carried state that is never detached: the second step backpropagates into the first step's graph
            state = hidden.get("h", torch.zeros(x.shape[0], 16))
            h = torch.tanh(model[0](x) + state)
            hidden["h"] = h
            loss = loss_fn(model[2](h), y)
        elif kind == "exit":
            import sys

            sys.exit(0)
        loss.backward()
        optimizer.step()
        return loss

    return step


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        pytest.param("inplace", "modified by an inplace operation", id="inplace"),
        pytest.param(
            "backward-twice", "at step 2: Trying to backward through the graph a second time", id="backward-twice"
        ),
        pytest.param("exit", "raised SystemExit at step 1: SystemExit(0) - the code called sys.exit()", id="sys-exit"),
    ],
)
def test_a_step_that_raises_is_a_finding_pointing_at_the_users_line(make_spec, kind, message):
    step = _failing_step(kind)
    report = run_checks(make_spec(train_step=step))
    assert report.exit_code == 1
    (finding,) = [f for c in report.checks for f in c.findings if f.severity == "error"]
    assert finding.check == "parameter-updates"
    assert "parameter-updates: the training step raised " in finding.message and message in finding.message
    assert finding.location is not None and finding.location.file.endswith("test_run_checks.py")
    first = step.__code__.co_firstlineno
    assert first < finding.location.line < first + 25


def test_a_step_that_trains_on_part_of_the_batch_passes(make_spec):
    """Sub-sampled rows, a padded-row mask and micro-batches: outputs with fewer rows than the targets."""

    def half(model, batch, loss_fn, optimizer):
        x, y = batch
        idx = torch.randperm(x.shape[0])[: x.shape[0] // 2]
        optimizer.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        return loss

    def unpadded(model, batch, loss_fn, optimizer):
        x, y = batch
        keep = y >= 0
        optimizer.zero_grad()
        loss = loss_fn(model(x[keep]), y[keep])
        loss.backward()
        optimizer.step()
        return loss

    x, y = synthetic_batch((4,), batch_size=16, num_classes=3)
    padded = y.clone()
    padded[-3:] = -1
    for step, targets in ((half, y), (unpadded, padded)):
        report = run_checks(make_spec(train_step=step, batch=(x, targets), model_factory=lambda: mlp()))
        assert report.exit_code == 0, [f.message for c in report.checks for f in c.findings]


def test_a_model_that_rejects_a_probe_gets_another_probe(make_spec):
    """A model that refuses the input-gradient probe is probed by perturbing samples instead: a verdict, no crash."""

    class NumpyPreprocessing(nn.Module):
        """Scales its input through numpy, which refuses a tensor that requires grad (the gradient probe's)."""

        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x):
            x = torch.from_numpy(np.clip(x.numpy(), -3, 3))
            return self.net(x)

    report = run_checks(make_spec(model_factory=NumpyPreprocessing), ["batch-independence"])
    (result,) = report.checks
    assert report.exit_code == 0
    assert result.status == "pass" and result.figures["method"] == "perturbing other samples"


def test_a_bug_of_the_kit_is_exit_3_with_the_report_written(make_spec, monkeypatch):
    from ci_checks.checks import loss_decreases

    monkeypatch.setattr(loss_decreases, "CheckResult", dict)  # the kit's own code now raises inside the check
    report = run_checks(make_spec())
    assert report.exit_code == 3
    (error,) = report.subject["internal_errors"]
    assert error.startswith("loss-decreases: ValueError: ") and "(loss_decreases.py:" in error
    assert [c.status for c in report.checks].count("pass") == len(report.checks) - 1


def test_a_probe_the_model_cannot_run_is_skipped_with_its_reason(make_spec, monkeypatch):
    """What escapes a check from running the model on the kit's own inputs is a skip naming the error, not exit 3."""
    from ci_checks.checks import train_mode

    def probe_with_wrong_width(session):
        model, _ = session.harness.build()
        session.harness.forward(model, torch.zeros(3, 7))  # the model takes 4 features

    monkeypatch.setattr(train_mode, "check", probe_with_wrong_width)
    report = run_checks(make_spec())
    assert report.exit_code == 0
    result = report.checks[-1]
    assert result.check == "train-mode" and result.status == "skip"
    assert result.summary.startswith("skipped: the check's probe could not run on this model: RuntimeError: mat1")
