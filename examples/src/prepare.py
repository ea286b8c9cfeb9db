"""Make the dataset: interleaved 2-D spirals, one arm per class, split into train and test."""

from __future__ import annotations

import os

import numpy as np
import yaml

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spirals(n_samples: int, classes: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return float32 points [n, 2] and int64 labels [n]."""
    rng = np.random.default_rng(seed)
    per_class = n_samples // classes
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.1, 1.0, per_class)
        theta = np.linspace(0, 3.5, per_class) + 2 * np.pi * c / classes + rng.normal(0, noise, per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(per_class, c))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    order = rng.permutation(len(y))
    return x[order], y[order]


def main() -> None:
    with open(os.path.join(HERE, "params.yaml")) as fh:
        params = yaml.safe_load(fh)["prepare"]
    x, y = spirals(params["n_samples"], params["classes"], params["noise"], params["seed"])
    split = int(0.8 * len(y))
    os.makedirs(os.path.join(HERE, "data"), exist_ok=True)
    np.savez(
        os.path.join(HERE, "data", "spirals.npz"),
        x_train=x[:split],
        y_train=y[:split],
        x_test=x[split:],
        y_test=y[split:],
    )
    print(f"wrote {split} train and {len(y) - split} test samples")


if __name__ == "__main__":
    main()
