"""Shared tiny specs: a 4-feature, 3-class batch of 8 samples and models small enough to train in milliseconds."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Failing memorization runs train to the step budget; keep it small so a "must fail" case costs well under a second.
FAST_SETTINGS = {"memorization": {"max-steps": 60, "max-seconds": 20.0}}


def tiny_mlp(in_features: int = 4, hidden: int = 16, classes: int = 3) -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def make_training_spec(**overrides: Any) -> Any:
    """A clean classification spec that passes every check; keyword arguments replace its fields."""
    import torch
    from torch import nn

    from ci_checks import TrainingSpec, synthetic_batch

    fields: dict[str, Any] = {
        "model_factory": tiny_mlp,
        "batch": synthetic_batch((4,), batch_size=8, num_classes=3),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=0.05),
        "settings": {k: dict(v) for k, v in FAST_SETTINGS.items()},
    }
    fields.update(overrides)
    return TrainingSpec(**fields)


def step(*, zero_grad: bool = True, mode: str = "train") -> Callable[..., Any]:
    """A user train_step with the usual shape; the flags switch in the classic bugs."""

    def train_step(model: Any, batch: Any, loss_fn: Any, optimizer: Any) -> Any:
        x, y = batch
        getattr(model, mode)()
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


@pytest.fixture
def make_spec() -> Callable[..., Any]:
    """Build a clean TrainingSpec; override any field: make_spec(optimizer_factory=..., train_step=...)."""
    return make_training_spec


@pytest.fixture
def mlp() -> Callable[..., Any]:
    return tiny_mlp


@pytest.fixture
def make_step() -> Callable[..., Any]:
    return step


SPEC_HEADER = """\
import torch
from torch import nn
from ci_checks import synthetic_batch


def _mlp():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def good():
    return {
        "model_factory": _mlp,
        "batch": synthetic_batch((4,), batch_size=8, num_classes=3),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=0.05),
        "memorization": {"max-steps": 60},
    }

"""


@pytest.fixture
def write_spec(tmp_path: Any) -> Callable[..., str]:
    """Write a spec module (a header with good() plus the given body) into tmp_path; return its path."""

    def write(body: str = "", name: str = "ci_spec.py") -> str:
        path = tmp_path / name
        path.write_text(SPEC_HEADER + textwrap.dedent(body), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """The models here are tiny: on a 2-core runner, intra-op threads cost ten times the arithmetic."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_import_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Loading a spec puts its folder on sys.path and its modules in sys.modules; undo that after each test.

    Otherwise a later test's `from helpers import ...` would get an earlier test's helpers module.
    """
    path = list(sys.path)
    modules = set(sys.modules)
    base = str(tmp_path_factory.getbasetemp())
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if name.startswith("_ci_checks_") or file.startswith(base):
            del sys.modules[name]
