"""Hooks on the user's model and parameters that record what happens inside their training step."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from ci_checks.engine import tree as _tree

if TYPE_CHECKING:
    from ci_checks.engine.harness import Harness, Run


def plain_tensors(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors stored on modules as plain attributes: not in state_dict, not moved by .to()."""
    for mod_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if (
                isinstance(value, torch.Tensor)
                and not isinstance(value, torch.nn.Parameter)
                and not attr.startswith("_")
            ):
                yield (f"{mod_name}.{attr}" if mod_name else attr), value


# Steps during which a missing zero_grad() is looked for (it shows at step 2: a gradient carried over from step 1).
STALE_GRAD_STEPS = 3
# Steps during which each gradient's arrival is watched for a stale gradient under it (version counters); after
# them the per-parameter hooks that did so are removed, so a long run pays nothing for them.
WATCH_STEPS = 10


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every element of every tensor is finite, in one fused reduction per device (not one isfinite each).

    A norm is NaN or infinite when any element is; it can also overflow on huge finite values, so a non-finite
    norm is confirmed tensor by tensor (rare: only when something is already wrong or enormous).
    """
    try:  # the usual case: dense tensors of one device and dtype, one kernel for all of them
        if bool(torch.stack(torch._foreach_norm(tensors)).sum().isfinite()):
            return True
    except (RuntimeError, TypeError, NotImplementedError, ValueError):
        pass  # sparse gradients, integer or mixed tensors: grouped below
    dense: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    others: list[torch.Tensor] = []
    for t in tensors:
        if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
            continue
        if t.layout == torch.strided:
            dense.setdefault((t.device, t.dtype), []).append(t)
        else:
            others.append(t)
    try:
        for group in dense.values():
            norms = torch._foreach_norm(group)
            if not bool(torch.stack(norms).sum().isfinite()) and not all(finite(t) for t in group):
                return False
    except (RuntimeError, TypeError, NotImplementedError):  # a tensor subclass or backend without the fused kernel
        return all(finite(t) for group in dense.values() for t in group) and all(finite(t) for t in others)
    return all(finite(t) for t in others)


def finite(t: torch.Tensor) -> bool:
    """Whether one tensor (sparse included) holds only finite values."""
    if t.layout != torch.strided:
        t = t.coalesce().values() if t.layout == torch.sparse_coo else t.to_dense()
    return bool(torch.isfinite(t).all())


class Observer:
    """Hooks on the model and its parameters that record what happens inside the user's step."""

    def __init__(self, run: Run, model: torch.nn.Module, named: dict[str, torch.nn.Parameter]) -> None:
        self.run = run
        self.step = 0
        self.active = False
        self.outputs: list[Any] = []
        self.grads: dict[str, torch.Tensor] = {}  # this step's gradient of each parameter, as backward left it
        self.grad_norms: dict[str, float] = {}
        self.arrived: set[str] = set()
        self.version_at_accum: dict[str, int] = {}
        self.sum_at_accum: dict[str, torch.Tensor] = {}
        self.handles: list[Any] = []
        self.watch_handles: list[Any] = []  # removed after WATCH_STEPS
        self.named = named
        self.params: list[torch.Tensor] = list(named.values())
        self.handles.append(model.register_forward_pre_hook(self._pre_forward))
        self.handles.append(model.register_forward_hook(self._post_forward))
        for name, p in named.items():
            if p.requires_grad:
                self.watch_handles.append(p.register_hook(self._incoming(name, p)))
                self.handles.append(p.register_post_accumulate_grad_hook(self._accumulated(name)))

    def watch_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """At the first optimizer.step(): which parameters had a gradient after backward but none any more."""
        names = {id(p): n for n, p in self.named.items()}

        def before_step(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            if not self.active or self.step != 1 or self.run.cleared_before_update:
                return
            cleared = []
            for group in opt.param_groups:
                for p in group["params"]:
                    name = names.get(id(p))
                    if name is None or not self.grad_norms.get(name):
                        continue
                    if p.grad is None or not bool(p.grad.detach().any()):
                        cleared.append(name)
            self.run.cleared_before_update = cleared

        self.handles.append(optimizer.register_step_pre_hook(before_step))

    def begin_step(self, step: int) -> None:
        self.step = step
        self.active = True
        self.outputs = []
        self.grads = {}
        self.arrived = set()
        self.run.forward_calls.append(0)
        if step > WATCH_STEPS and self.watch_handles:
            for h in self.watch_handles:
                h.remove()
            self.watch_handles = []
            self.version_at_accum.clear()

    def end_step(self) -> None:
        self.active = False

    def check_finite(self, loss: float) -> None:
        """After a step: the first non-finite model output, gradient, loss or parameter, in that order.

        One fused reduction over all of them per step; only when it is not finite are they looked at one by one.
        """
        if self.run.nonfinite is not None:
            return
        outputs = [(path, t.detach()) for out in self.outputs for path, t in _tree.leaves(out) if t.is_floating_point()]
        with torch.no_grad():
            if math.isfinite(loss) and all_finite([t for _, t in outputs] + list(self.grads.values()) + self.params):
                self.run.finite_until = self.step
                return
        params = [(n, p.detach()) for n, p in self.named.items()]
        for path, t in outputs:
            if not finite(t):
                self.run.nonfinite = (self.step, f"model output{'' if path == 'tensor' else ' ' + path}")
                return
        for name, g in self.grads.items():
            if not finite(g):
                self.run.nonfinite = (self.step, f"gradient of {name}")
                return
        if not math.isfinite(loss):
            self.run.nonfinite = (self.step, "the loss")
            return
        for name, t in params:
            if not finite(t):
                self.run.nonfinite = (self.step, f"parameter {name}")
                return

    def close(self) -> None:
        for h in self.handles + self.watch_handles:
            h.remove()

    def _pre_forward(self, module: torch.nn.Module, args: Any) -> None:
        if self.active:
            self.run.forward_calls[-1] += 1
            # A no_grad pass in eval mode inside the step (pseudo-labels, logging) is not training.
            if torch.is_grad_enabled():
                self.run.root_modes.append(module.training)

    def _post_forward(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if not self.active:
            return
        self.outputs.append(output)
        step = self.step
        if step > WATCH_STEPS:
            return
        for _, t in _tree.leaves(output):
            if t.requires_grad:
                t.register_hook(lambda grad, step=step: self.run.output_grad_steps.add(step))

    def _incoming(self, name: str, p: torch.Tensor) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            if not self.active or name in self.arrived:
                return
            self.arrived.add(name)
            # A gradient left from an earlier step whose update already changed the parameter is stale:
            # accumulating onto it means zero_grad() is missing. The version counter sees optimizers and
            # torch.no_grad() updates; the sum sees manual updates through p.data, which the counter does not.
            old = p.grad
            if (
                self.run.stale_grad is None
                and old is not None
                and name in self.version_at_accum
                and (
                    p._version != self.version_at_accum[name]
                    or (name in self.sum_at_accum and not bool(p.detach().sum() == self.sum_at_accum[name]))
                )
                and bool(old.detach().any())
            ):
                self.run.stale_grad = (self.step, name)

        return hook

    def _accumulated(self, name: str) -> Callable[[torch.Tensor], None]:
        def hook(p: torch.Tensor) -> None:
            if not self.active or p.grad is None:
                return
            g = p.grad.detach()
            self.grads[name] = g  # checked for non-finite values after the step, with everything else at once
            if self.step > WATCH_STEPS:
                return
            self.version_at_accum[name] = p._version
            if self.step <= STALE_GRAD_STEPS:
                self.sum_at_accum[name] = p.detach().sum()
            else:
                self.sum_at_accum.pop(name, None)
            if self.step == 1:
                self.grad_norms[name] = float(g.float().norm())

        return hook

    def train_fit(self, harness: Harness) -> float | None:
        if len(self.outputs) != 1:
            return None  # several forwards in one step (gradient accumulation): judged in eval mode instead
        return harness.fit(harness.prediction(self.outputs[0]))
