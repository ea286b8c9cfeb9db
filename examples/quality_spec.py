"""The ci-checks quality spec of the example: the trained model, the held-out split, two slices, an INV and a DIR test.

The model is the DVC pipeline's models/model.pt when it is there (checked out from the DVC cache when it can be), else
it is trained here in memory with the pipeline's own code and parameters: a fresh clone in CI needs no `dvc repro`.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src"))

from model import SpiralNet  # noqa: E402
from prepare import spirals  # noqa: E402
from train import make_optimizer, train_step  # noqa: E402


def _params() -> dict:
    with open(os.path.join(HERE, "params.yaml")) as fh:
        return yaml.safe_load(fh)


def _split(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pipeline's train and test split: data/spirals.npz, or made again as src/prepare.py makes it."""
    path = os.path.join(HERE, "data", "spirals.npz")
    if os.path.exists(path):
        data = np.load(path)
        return data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    p = params["prepare"]
    x, y = spirals(p["n_samples"], p["classes"], p["noise"], p["seed"])
    split = int(0.8 * len(y))
    return x[:split], y[:split], x[split:], y[split:]


def _factory(params: dict) -> SpiralNet:
    t = params["train"]
    return SpiralNet(hidden=t["hidden"], dropout=t["dropout"], classes=params["prepare"]["classes"])


def _trained(params: dict, x: np.ndarray, y: np.ndarray) -> SpiralNet:
    """The model src/train.py trains (same seed, epochs and batches), built in memory."""
    t = params["train"]
    torch.manual_seed(t["seed"])
    model = _factory(params)
    optimizer = make_optimizer(model.parameters(), t["lr"], t["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(t["seed"])
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(t["epochs"]):
        for idx in torch.randperm(len(ys), generator=gen).split(t["batch_size"]):
            train_step(model, (xs[idx], ys[idx]), loss_fn, optimizer)
    return model


def _toward_own_arm(x_train: np.ndarray, y_train: np.ndarray):
    """DIR perturbation: move each point halfway to the nearest training point of its own class."""
    ref_x, ref_y = torch.from_numpy(x_train), torch.from_numpy(y_train)

    def perturb(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        moved = inputs.clone()
        for c in targets.unique():
            rows, own = targets == c, ref_x[ref_y == c]
            nearest = own[torch.cdist(inputs[rows], own).argmin(1)]
            moved[rows] = 0.5 * (inputs[rows] + nearest)
        return moved

    return perturb


def quality_spec() -> dict:
    params = _params()
    x_train, y_train, x_test, y_test = _split(params)
    return {
        "checkpoint": "models/model.pt",
        "state_key": "model",
        "model_factory": lambda: _factory(params),
        "model": lambda: _trained(params, x_train, y_train),
        "dataset": {
            "inputs": torch.from_numpy(x_test),
            "targets": torch.from_numpy(y_test),
            "metadata": {"radius": np.linalg.norm(x_test, axis=1)},
        },
        "slices": {
            "centre": {"column": "radius", "max": 0.4},  # where the three arms are close together
            "left": lambda inputs, targets, metadata: (inputs[:, 0] < 0).numpy(),  # a predicate on the inputs
        },
        "behaviour": [
            {
                "name": "inv-jitter",
                "type": "INV",
                "perturb": lambda inputs, targets: inputs + 0.01 * torch.randn_like(inputs),
                "tolerance": 0.1,
            },
            {
                "name": "dir-toward-own-arm",
                "type": "DIR",
                "perturb": _toward_own_arm(x_train, y_train),
                "expect": "up",
                "of": "label",
                "tolerance": 0.02,
            },
        ],
        "metrics": ["accuracy", "f1"],
    }
