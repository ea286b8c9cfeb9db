"""batch-independence: in eval mode, sample 0's output does not depend on the other samples' inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ci_checks import synthetic_batch
from ci_checks.checks.batch_independence import batch_independence


class ReshapeMixer(nn.Module):
    """The classic bug: x.t().reshape(n, -1) instead of a permute keeps the shape and mixes samples."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.t().reshape(x.shape[0], -1))


class TokenClassifier(nn.Module):
    def __init__(self, mix: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.head = nn.Linear(8, 3)
        self.mix = mix

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids).mean(1)
        if self.mix:
            h = h + h.mean(0, keepdim=True)  # batch statistics leak into every sample
        return self.head(h)


class TimeMajor(nn.Module):
    """[T, N, F] -> [T, N, C]; mixes over time (dim 0), which is fine, or over the batch (dim 1), which is not."""

    def __init__(self, mix_batch: bool = False, flatten: bool = False) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.mix_batch, self.flatten = mix_batch, flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + x.mean(0, keepdim=True)
        if self.mix_batch:
            x = x + x.mean(1, keepdim=True)
        out = self.net(x)
        return out.reshape(-1, 3) if self.flatten else out


class LogitsAndLoss(nn.Module):
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
        return {"loss": self.net(x).sum(), "logits": self.net(x)}


def time_major_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 8, 4, generator=g), torch.randint(0, 3, (5, 8), generator=g)


def time_major(**model_kw):
    flat = model_kw.get("flatten", False)
    return {
        "model_factory": lambda: TimeMajor(**model_kw),
        "batch": time_major_batch(),
        "batch_dim": 1,
        "loss_fn": (
            (lambda out, y: F.cross_entropy(out, y.reshape(-1)))
            if flat
            else (lambda out, y: F.cross_entropy(out.reshape(-1, 3), y.reshape(-1)))
        ),
    }


def tokens(**model_kw):
    return {
        "model_factory": lambda: TokenClassifier(**model_kw),
        "batch": synthetic_batch((6,), batch_size=8, vocab_size=10, num_classes=3),
    }


PASSING = [
    pytest.param(lambda: {}, "input gradient", id="mlp"),
    pytest.param(
        lambda: {
            "model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        },
        "input gradient",
        id="batchnorm-judged-in-eval-mode",
    ),
    pytest.param(tokens, "perturbing other samples", id="integer-token-inputs"),
    pytest.param(time_major, "input gradient", id="time-major-batch-dim-1"),
    pytest.param(lambda: time_major(flatten=True), "input gradient", id="time-major-flattened-output"),
    pytest.param(
        lambda: {"model_factory": LogitsAndLoss, "loss_fn": lambda out, y: F.cross_entropy(out[0], y)},
        "input gradient",
        id="logits-loss-tuple",
    ),
    pytest.param(
        lambda: {"model_factory": DictOutput, "loss_fn": lambda out, y: F.cross_entropy(out["logits"], y)},
        "input gradient",
        id="dict-output",
    ),
]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("overrides", "method"), PASSING)
def test_passes(make_spec, overrides, method):
    result = batch_independence(make_spec(**overrides()))
    assert result.status == "pass", (result.summary, [f.message for f in result.findings])
    assert result.figures["method"] == method
    assert result.figures["own_effect"] > 0


FAILING = [
    pytest.param(lambda: {"model_factory": ReshapeMixer}, "input gradient", id="reshape-mixes-samples"),
    pytest.param(lambda: tokens(mix=True), "perturbing other samples", id="token-inputs-mixed"),
    pytest.param(lambda: time_major(mix_batch=True), "input gradient", id="time-major-mixes-batch-axis"),
    pytest.param(lambda: {**time_major(), "batch_dim": 0}, "input gradient", id="time-major-batch-dim-not-declared"),
]


@pytest.mark.parametrize(("overrides", "method"), FAILING)
def test_fails(make_spec, overrides, method):
    spec = make_spec(**overrides())
    result = batch_independence(spec)
    assert result.status == "fail"
    assert result.figures["method"] == method
    (finding,) = result.findings
    assert finding.message.startswith("batch-independence: sample 0's output depends on other samples' inputs")
    assert f"over dim {spec.batch_dim}" in finding.message and "set batch_dim" in finding.message


def test_skips_a_batch_of_one(make_spec):
    x, y = synthetic_batch((4,), batch_size=1, num_classes=3)
    result = batch_independence(make_spec(batch=(x, y)))
    assert result.status == "skip"
    assert "at least 2 samples" in result.summary


def test_tolerance_is_a_setting(make_spec):
    result = batch_independence(make_spec(**tokens(mix=True)), settings={"tolerance": 1e9})
    assert result.status == "pass"
