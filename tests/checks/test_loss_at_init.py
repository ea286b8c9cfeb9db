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


# ---------------------------------------------------------------- GPT-style targets of -1, and the user's train_step


class BigramGPT(nn.Module):
    """nanoGPT's interface on a bigram model: model(idx, targets) -> (logits, loss), targets of -1 ignored."""

    def __init__(self, vocab_size: int = 16) -> None:
        super().__init__()
        self.wte, self.lm_head = nn.Embedding(vocab_size, 16), nn.Linear(16, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.lm_head(self.wte(idx))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def gpt_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 16, (8, 9), generator=g)
    x, y = data[:, :-1], data[:, 1:].clone()
    y[:, :3] = -1  # positions without a target (padding, prompt)
    return x, y


def gpt(loss_fn) -> dict:
    return {"model_factory": BigramGPT, "batch": gpt_batch(), "loss_fn": loss_fn}


def flat(out: torch.Tensor) -> torch.Tensor:
    return out.view(-1, out.size(-1))


GPT_CASES = [
    pytest.param(
        gpt(lambda out, y: F.cross_entropy(flat(out[0]), y.view(-1), ignore_index=-1)), None, id="ignore-index-minus-1"
    ),
    pytest.param(
        {**gpt(lambda out, y: out[1]), "forward": lambda model, idx: model(idx, gpt_batch()[1])},
        None,
        id="model-computes-its-loss",
    ),
    pytest.param(
        gpt(lambda out, y: F.cross_entropy(flat(out[0]), y.view(-1), ignore_index=-1, label_smoothing=0.1)),
        None,
        id="label-smoothing-and-ignore-index",
    ),
    pytest.param(
        gpt(lambda out, y: F.cross_entropy(flat(out[0]).softmax(-1), y.view(-1), ignore_index=-1)),
        "the loss equals cross_entropy(softmax(outputs)) - double softmax",
        id="double-softmax-with-ignore-index",
    ),
]


@pytest.mark.parametrize(("spec", "message"), GPT_CASES)
def test_gpt_targets_of_minus_1_are_ignored(make_spec, spec, message):
    result = loss_at_init(make_spec(**spec))
    assert result.figures["expected_loss"] == pytest.approx(math.log(16))
    if message is None:
        assert result.status == "pass", [f.message for f in result.findings]
    else:
        assert result.status == "fail"
        assert any(message in f.message for f in result.findings), [f.message for f in result.findings]


class LogitsOnly(nn.Module):
    """The GPT called without targets, returning only its logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)[0]


def user_step(*, activation: str = "", part: bool = False, raises: bool = False):
    """A user's train_step; the flags switch in an activation before the loss, a half batch, an error."""

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        if part:
            x, y = x[: len(x) // 2], y[: len(y) // 2]
        model.train()
        optimizer.zero_grad()
        out = model(x)
        if activation == "softmax":
            out = out.softmax(-1)
        elif activation == "sigmoid":
            out = torch.sigmoid(out)
        loss = loss_fn(out, y)
        if raises:
            loss = loss.detach()
        loss.backward()
        optimizer.step()
        return loss

    return train_step


BINARY = {
    "model_factory": lambda: nn.Linear(4, 1),
    "loss_fn": nn.BCEWithLogitsLoss(),
    "batch": (torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([[0.0], [1.0]] * 4)),
}

STEP_PASSING = [
    pytest.param({"train_step": user_step()}, id="plain-step"),
    pytest.param(
        {"train_step": user_step(), "loss_fn": nn.CrossEntropyLoss(label_smoothing=0.1)}, id="label-smoothing"
    ),
    pytest.param({"train_step": user_step(), **BINARY}, id="binary-logits"),
    # The step's outputs cover half the batch: they cannot be matched with the targets, so no verdict.
    pytest.param({"train_step": user_step(activation="softmax", part=True)}, id="half-batch-not-judged"),
]


@pytest.mark.parametrize("overrides", STEP_PASSING)
def test_a_correct_train_step_passes(make_spec, overrides):
    result = loss_at_init(make_spec(**overrides))
    assert result.status == "pass", [f.message for f in result.findings]


STEP_FAILING = [
    pytest.param({"train_step": user_step(activation="softmax")}, "double softmax", id="softmax-in-step"),
    pytest.param(
        {
            "train_step": user_step(activation="softmax"),
            "model_factory": lambda: LogitsOnly(BigramGPT()),
            "batch": gpt_batch(),
            "loss_fn": lambda out, y: F.cross_entropy(flat(out), y.view(-1), ignore_index=-1),
        },
        "double softmax",
        id="softmax-in-step-gpt-targets",
    ),
    pytest.param({"train_step": user_step(activation="sigmoid"), **BINARY}, "double sigmoid", id="sigmoid-in-step"),
]


@pytest.mark.parametrize(("overrides", "message"), STEP_FAILING)
def test_an_activation_inside_train_step_is_caught(make_spec, overrides, message):
    step = overrides["train_step"]
    result = loss_at_init(make_spec(**overrides))
    assert result.status == "fail", result.summary
    (finding,) = result.findings
    assert message in finding.message and "your train_step's loss" in finding.message
    assert finding.location is not None and finding.location.line == step.__code__.co_firstlineno
    assert result.summary.startswith("initial loss")  # the init verdict is still reported


def test_a_step_that_raises_is_reported_with_the_init_verdict(make_spec):
    result = loss_at_init(make_spec(train_step=user_step(raises=True)))
    assert result.status == "fail"
    (finding,) = result.findings
    assert "the training step raised RuntimeError at step 1" in finding.message
    assert result.summary.startswith("initial loss") and result.summary.endswith("; the training step raised")


def masking_step(*, softmax: bool = False):
    """A step that drops the rows without a label (-1) before its loss_fn, which cannot take them."""

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        model.train()
        optimizer.zero_grad()
        out = model(x)
        keep = y >= 0
        loss = loss_fn(out[keep].softmax(-1) if softmax else out[keep], y[keep])
        loss.backward()
        optimizer.step()
        return loss

    return train_step


@pytest.mark.parametrize("softmax", [pytest.param(False, id="logits"), pytest.param(True, id="softmax-in-step")])
def test_a_loss_fn_only_the_step_can_call_is_judged_on_the_steps_first_loss(make_spec, softmax):
    x, y = synthetic_batch((4,), batch_size=8, num_classes=3)
    y[::4] = -1  # F.cross_entropy's ignore_index is -100: the kit's own loss_fn call on the batch raises
    result = loss_at_init(make_spec(batch=(x, y), train_step=masking_step(softmax=softmax), loss_fn=F.cross_entropy))
    assert result.figures["initial_loss_of"] == "train_step"
    assert result.status == ("fail" if softmax else "pass"), [f.message for f in result.findings]
    if softmax:
        (finding,) = result.findings
        assert "double softmax" in finding.message and "your train_step's loss" in finding.message
