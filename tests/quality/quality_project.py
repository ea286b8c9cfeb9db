"""A small real project for the quality suites: tabular data in a pandas DataFrame, a trained MLP, a quality spec."""

from __future__ import annotations

import json
from typing import Any

DATA = '''
"""Three classes from four features: the class is the largest of x0..x2; x3 is noise the label never depends on."""
import numpy as np
import pandas as pd


def make(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = x[:, :3].argmax(1).astype(np.int64)
    frame = pd.DataFrame({"region": np.where(x[:, 1] > 0.8, "north", "south"), "x0": x[:, 0]})
    return x, y, frame
'''

MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, temperature=1.0, nuisance=1.0):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
        self.temperature = temperature
        self.register_buffer("scale", torch.tensor([1.0, 1.0, 1.0, nuisance]))

    def forward(self, x):
        return self.body(x * self.scale) * self.temperature
"""

TRAIN = '''
import torch

from data import make
from model import Net


def train(seed=0, corrupt=None, temperature=1.0, nuisance=1.0, steps=300):
    """Full-batch Adam on 1200 examples; corrupt="north" shuffles that region's labels (a broken data join)."""
    x, y, frame = make(1200, seed=7)
    y = y.copy()
    if corrupt:
        rows = (frame["region"] == corrupt).to_numpy()
        y[rows] = (y[rows] + 1) % 3
    torch.manual_seed(seed)
    model = Net(nuisance=nuisance)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xs), ys).backward()
        optimizer.step()
    model.temperature = temperature
    return model.eval()
'''

SPEC = '''
"""The quality spec: the model trained from this tree's code, a held-out set with known labels, slices and tests."""
import json
import os

import torch

from data import make
from train import train

HERE = os.path.dirname(os.path.abspath(__file__))


def quality_spec():
    with open(os.path.join(HERE, "params.json")) as fh:
        params = json.load(fh)
    x, y, frame = make(600, seed=123)

    def shift_x0(inputs, targets):
        moved = inputs.clone()
        moved[:, 0] += 0.5
        return moved

    return {
        "model": lambda: train(**params),
        "dataset": {"inputs": torch.from_numpy(x), "targets": torch.from_numpy(y), "metadata": frame},
        "slices": {
            "north": {"column": "region", "equals": "north"},
            "x0-high": lambda inputs, targets, metadata: metadata["x0"].to_numpy() > 1.0,
        },
        "behaviour": [
            {"name": "inv-nuisance", "type": "INV", "perturb": lambda i, t: i + torch.tensor([0, 0, 0, 1.0]),
             "tolerance": 0.2},
            {"name": "dir-x0", "type": "DIR", "perturb": shift_x0, "expect": "up", "of": 0, "tolerance": 0.01},
            {"name": "mft-obvious", "type": "MFT", "inputs": torch.eye(4)[:3] * 3, "targets": torch.arange(3)},
        ],
        "metrics": ["accuracy", "f1"],
    }
'''

PYPROJECT = """
[tool.ci-checks.quality]
spec = "quality_spec.py:quality_spec"
min = {{ accuracy = {floor} }}
max-failure-rate = {rate}
bootstrap = 500
{extra}
"""


def files(*, floor: float = 0.8, rate: float = 0.1, extra: str = "", **params: Any) -> dict[str, str]:
    """The project's files; params go to train() (seed, corrupt, temperature, nuisance)."""
    return {
        "data.py": DATA,
        "model.py": MODEL,
        "train.py": TRAIN,
        "quality_spec.py": SPEC,
        "params.json": json.dumps(params),
        "pyproject.toml": PYPROJECT.format(floor=floor, rate=rate, extra=extra),
    }
