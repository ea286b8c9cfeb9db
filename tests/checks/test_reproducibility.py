"""reproducibility: two runs with the same seed give the same losses and parameters."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from ci_checks.checks.reproducibility import reproducibility


def augmenting_step(rng_factory):
    """A step that adds input noise drawn from the generator rng_factory() returns."""

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        noise = rng_factory().normal(scale=0.05, size=tuple(x.shape)).astype("float32")
        optimizer.zero_grad()
        loss = loss_fn(model(x + torch.from_numpy(noise)), y)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


def global_generators_step(model, batch, loss_fn, optimizer):
    """Randomness from the global generators that the kit seeds: torch, numpy and random."""
    x, y = batch
    scale = random.uniform(0.9, 1.1) * float(np.random.uniform(0.9, 1.1))
    optimizer.zero_grad()
    loss = loss_fn(model(x * scale + 0.05 * torch.randn_like(x)), y)
    loss.backward()
    optimizer.step()
    return loss


def unseeded_init_model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(np.random.default_rng().normal(size=(16, 4)).astype("float32")))
    return model


PASSING = [
    pytest.param({}, id="clean"),
    pytest.param(
        {"model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))},
        id="dropout",
    ),
    pytest.param({"train_step": global_generators_step}, id="global-generators-are-seeded"),
    pytest.param({"train_step": augmenting_step(lambda: np.random.default_rng(0))}, id="seeded-numpy-generator"),
]


@pytest.mark.parametrize("overrides", PASSING)
def test_passes(make_spec, overrides):
    result = reproducibility(make_spec(**overrides))
    assert result.status == "pass", [f.message for f in result.findings]
    assert result.figures["max_loss_diff"] == 0.0
    assert result.figures["max_param_diff"] == 0.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"train_step": augmenting_step(np.random.default_rng)},
            "the loss differs from step 1",
            id="unseeded-generator-in-step",
        ),
        pytest.param(
            {"model_factory": unseeded_init_model}, "differ at init (0.weight)", id="unseeded-generator-in-init"
        ),
    ],
)
def test_fails(make_spec, overrides, message):
    result = reproducibility(make_spec(**overrides))
    assert result.status == "fail"
    (finding,) = result.findings
    assert finding.message.startswith("reproducibility: two runs with the same seed differ")
    assert message in finding.message
    assert "np.random.default_rng()" in finding.message


def test_steps_is_a_setting(make_spec):
    assert reproducibility(make_spec(), settings={"steps": 5}).figures["steps"] == 5


def test_nan_in_both_runs_at_the_same_step_is_reproducible(make_spec):
    result = reproducibility(make_spec(optimizer_factory=lambda p: torch.optim.SGD(p, lr=1e6)), settings={"steps": 6})
    assert result.status == "pass", [f.message for f in result.findings]
