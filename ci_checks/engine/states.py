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
        if x.dtype == y.dtype and x.device == y.device and torch.equal(x, y):
            continue  # bit-identical, the usual case: one pass without a temporary, instead of a diff and allclose
        if not x.is_floating_point():
            if not torch.equal(x, y):
                first = first or key
            continue
        x, y = x.float(), y.float().to(x.device)
        # Equal values (infinities included) and NaN in both at the same place match, as allclose(equal_nan=True).
        diff = (x - y).abs().masked_fill((x == y) | (x.isnan() & y.isnan()), 0.0)
        d = float(diff.max()) if diff.numel() else 0.0
        if not (d <= d):  # NaN on one side only
            first = first or key
            continue
        worst = max(worst, d)
        if bool((diff > atol + rtol * y.abs()).any()):
            first = first or key
    return first, worst
