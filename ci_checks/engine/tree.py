"""Small helpers over nested batches and model outputs (tensors, tuples, lists, dicts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from ci_checks._errors import UserError

PREDICTION_KEYS = (
    "logits",
    "log_probs",
    "logprobs",
    "prediction",
    "predictions",
    "pred",
    "preds",
    "y_hat",
    "output",
    "out",
)


def leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (path, tensor) for each tensor in a nested structure, depth first."""
    if isinstance(tree, torch.Tensor):
        yield prefix or "tensor", tree
    elif isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}[{k!r}]")
    elif isinstance(tree, (tuple, list)):
        for i, v in enumerate(tree):
            yield from leaves(v, f"{prefix}[{i}]")


def map_tree(tree: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """Apply fn to every tensor, keeping the structure (named tuples included)."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, Mapping):
        return (
            type(tree)({k: map_tree(v, fn) for k, v in tree.items()})
            if isinstance(tree, dict)
            else {k: map_tree(v, fn) for k, v in tree.items()}
        )
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(map_tree(v, fn) for v in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_tree(v, fn) for v in tree)
    return tree


def find_prediction(outputs: Any) -> torch.Tensor | None:
    """Pick the prediction tensor out of a model's outputs.

    A tensor is itself; a dict uses the first of PREDICTION_KEYS present, else its first floating tensor;
    a tuple or list uses its first floating tensor (``(logits, loss)``, ``(log_probs, hidden)``).
    Scalars (a loss returned next to the logits) are skipped.
    """
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        for key in PREDICTION_KEYS:
            value = outputs.get(key)
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value
    if hasattr(outputs, "logits") and isinstance(outputs.logits, torch.Tensor):
        return outputs.logits  # Hugging Face style ModelOutput
    for _, tensor in leaves(outputs):
        if tensor.is_floating_point() and tensor.dim() >= 1:
            return tensor
    return None


def batch_size(tree: Any, batch_dim: int) -> int | None:
    for _, tensor in leaves(tree):
        if tensor.dim() > batch_dim:
            return int(tensor.shape[batch_dim])
    return None


def flat_inputs(inputs: Any, *, command: str) -> tuple[list[str], list[torch.Tensor]]:
    """Name and list the input tensors of a batch: one tensor, a tuple/list of them, or a flat dict."""

    if isinstance(inputs, torch.Tensor):
        return ["input"], [inputs]
    if isinstance(inputs, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in inputs):
        return [f"input_{i}" for i in range(len(inputs))], list(inputs)
    if isinstance(inputs, dict) and all(isinstance(t, torch.Tensor) for t in inputs.values()):
        return list(inputs), list(inputs.values())
    raise UserError(f"{command} needs the batch inputs to be a tensor, a tuple or a flat dict of tensors")


def output_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor of a model's output, in order."""
    return [t for _, t in leaves(value)]
