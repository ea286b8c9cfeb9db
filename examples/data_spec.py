"""The example's data spec for ci-checks data-check and data-stats: the spirals splits as torch datasets.

[tool.ci-checks.data.datasets.spirals] sets path = "data/spirals.npz", so the function is given that file (and, to
compare with the base branch, the copy of it that the base's dvc.lock pins).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset


def spirals(path: str) -> dict[str, TensorDataset]:
    with np.load(path) as data:
        return {
            split: TensorDataset(torch.from_numpy(data[f"x_{split}"]), torch.from_numpy(data[f"y_{split}"]))
            for split in ("train", "test")
        }
