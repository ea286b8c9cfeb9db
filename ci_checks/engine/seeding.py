"""Seeding and saving the global random state (torch, CUDA, random, numpy) around the user's code."""

from __future__ import annotations

import random
from typing import Any

import torch


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "random": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover - numpy ships with the torch extra
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def seed_everything(seed: int) -> None:
    """Seed torch, random and numpy's global generator, as Lightning's seed_everything does."""
    random.seed(seed)
    if _accelerators():
        torch.manual_seed(seed)
    else:
        # torch.manual_seed also queues a lazy seeding of CUDA, MPS and XPU, formatting a stack trace each time
        # (~0.3 ms, and the queue grows with every call); without an accelerator only the CPU generator exists.
        torch.default_generator.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def _accelerators() -> bool:
    """Whether torch sees a CUDA, MPS or XPU device whose generator torch.manual_seed would seed."""
    if torch.cuda.is_available():
        return True
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())
