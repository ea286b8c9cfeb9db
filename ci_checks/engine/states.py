"""Comparing model states and losses between two runs, within tolerance."""

from __future__ import annotations

from typing import Any


def detached_state(model: Any) -> dict[str, Any]:
    """The model's state_dict, detached (not cloned)."""
    return {k: v.detach() for k, v in model.state_dict().items()}


def close_numbers(a: float, b: float, rtol: float, atol: float) -> bool:
    """Two losses agree within tolerance."""
    # NaN at the same step in both runs is a match, as equal_nan=True is for the parameters
    return a == b or (a != a and b != b) or abs(a - b) <= atol + rtol * abs(b)


def first_difference(a: dict[str, Any], b: dict[str, Any], rtol: float, atol: float) -> tuple[str | None, float]:
    """The first tensor that differs beyond tolerance, and the largest difference over all of them."""
    import torch

    first, worst = None, 0.0
    for key, x in a.items():
        y = b.get(key)
        if y is None or y.shape != x.shape:
            first = first or key
            continue
        if not x.is_floating_point():
            if not torch.equal(x, y):
                first = first or key
            continue
        d = float((x.float() - y.float()).abs().max()) if x.numel() else 0.0
        worst = max(worst, d)
        if not torch.allclose(x.float(), y.float(), rtol=rtol, atol=atol, equal_nan=True):
            first = first or key
    return first, worst
