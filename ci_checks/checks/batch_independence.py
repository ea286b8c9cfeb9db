"""batch-independence: in eval mode, sample i's prediction does not depend on sample j's input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone

if TYPE_CHECKING:
    from ci_checks.engine.session import Session

NAME = "batch-independence"
HELP = "in eval mode, changing sample j's input does not change sample i's output (no mixing across the batch)"
SETTINGS: dict[str, Any] = {"tolerance": 1e-5}


def needs(settings: Mapping[str, Any]) -> None:
    """Probes a fresh model in eval mode: no training."""
    return None


def check(session: Session) -> CheckResult:
    from ci_checks.engine import tree as _tree
    from ci_checks.engine.harness import probe_mode

    h = session.harness
    result = CheckResult(NAME)
    bd = h.spec.batch_dim
    n = _tree.batch_size(h.inputs, bd)
    if n is None or n < 2:
        result.skipped = True
        result.summary = f"skipped: needs a batch of at least 2 samples along batch_dim={bd}"
        return result
    tol = float(session.opt(NAME, "tolerance"))
    model, _ = h.build()
    batched = [(path, t) for path, t in _tree.leaves(h.inputs) if t.dim() > bd and t.shape[bd] == n]
    floats = [t for _, t in batched if t.is_floating_point()]
    ints = [t for _, t in batched if not t.is_floating_point()]
    import torch

    with probe_mode(model, training=False):
        with torch.no_grad():
            base = _aligned(h, h.forward(model), n)
        if base is None:
            result.skipped = True
            result.summary = "skipped: no prediction tensor with the batch axis (give prediction() or batch_dim)"
            return result
        if floats and not ints:
            method = "input gradient"
            leak, own = _gradient_leak(h, model, n)
        else:  # token ids have no input gradient: replace whole samples instead
            method = "perturbing other samples"
            leak, own = _perturbation_leak(h, model, n, base)
    result.figures.update(batch_size=n, batch_dim=bd, leak=leak, own_effect=own, method=method)
    result.summary = f"sample 0's output vs other samples' inputs ({method}): leak {leak:.2g}"
    if own == 0.0:
        result.skipped = True
        result.summary = "skipped: sample 0's output does not depend on its own input either"
        return result
    if leak > tol * max(own, 1e-12):
        result.add(
            "error",
            f"{NAME}: sample 0's output depends on other samples' inputs (leak {leak:.3g} vs own effect {own:.3g}) "
            f"- a view/reshape/transpose mixing the batch axis, or attention/normalization over dim {bd}; "
            "if the batch is not on axis 0, set batch_dim in the spec",
            location=h.spec.location,
            leak=leak,
            own=own,
        )
    return result


def _aligned(h: Any, outputs: Any, n: int) -> Any:
    """The prediction with its batch axis at batch_dim; un-flattens [T*N, ...] outputs of time-major models."""
    from ci_checks.engine import tree as _tree

    pred = h.prediction(outputs)
    bd = h.spec.batch_dim
    if pred is None or pred.dim() == 0:
        return None
    if pred.dim() > bd and pred.shape[bd] == n:
        return pred
    lead = None
    for _, t in _tree.leaves(h.inputs):
        if t.dim() > bd and t.shape[bd] == n:
            lead = list(t.shape[: bd + 1])
            break
    if lead is not None and bd > 0 and pred.shape[0] == _prod(lead):
        return pred.reshape(*lead, *pred.shape[1:])
    return None


def _prod(xs: list[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def _gradient_leak(h: Any, model: Any, n: int) -> tuple[float, float]:
    import torch

    from ci_checks.engine import tree as _tree

    bd = h.spec.batch_dim
    grads_of: list[torch.Tensor] = []

    def watch(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point() and t.dim() > bd and t.shape[bd] == n:
            t = t.detach().clone().requires_grad_(True)
            grads_of.append(t)
        return t

    inputs = _tree.map_tree(h.inputs, watch)
    pred = _aligned(h, h.forward(model, inputs), n)
    if pred is None or not pred.requires_grad:
        return 0.0, 0.0
    grads = torch.autograd.grad(pred.select(bd, 0).float().sum(), grads_of, allow_unused=True)
    leak = own = 0.0
    for g in grads:
        if g is None:
            continue
        per_sample = g.abs().movedim(bd, 0).reshape(n, -1).sum(1)
        own = max(own, float(per_sample[0]))
        leak = max(leak, float(per_sample[1:].max()))
    return leak, own


def _perturbation_leak(h: Any, model: Any, n: int, base: Any) -> tuple[float, float]:
    """Replace whole samples (token ids included) and see whose outputs move."""
    import torch

    from ci_checks.engine import tree as _tree

    bd = h.spec.batch_dim
    gen = torch.Generator().manual_seed(1234)

    def perturb(which: slice) -> Any:
        def fn(t: torch.Tensor) -> torch.Tensor:
            if t.dim() <= bd or t.shape[bd] != n:
                return t
            moved = t.movedim(bd, 0).clone()
            part = moved[which]
            if t.is_floating_point():
                part = part + torch.randn(part.shape, generator=gen).to(part) * (part.std() + 1.0)
            else:  # token ids: draw other ids already present in the batch, so they stay valid
                pool = t.reshape(-1)
                part = pool[torch.randint(0, pool.numel(), tuple(part.shape), generator=gen)].to(t.device)
            moved[which] = part
            return moved.movedim(0, bd)

        return _tree.map_tree(h.inputs, fn)

    with torch.no_grad():
        others = _aligned(h, h.forward(model, perturb(slice(1, None))), n)
        itself = _aligned(h, h.forward(model, perturb(slice(0, 1))), n)
    if others is None or itself is None:
        return 0.0, 0.0
    b0 = base.select(bd, 0).detach().float()  # base was computed with autograd on
    scale = float(b0.abs().max()) or 1.0
    leak = float((others.select(bd, 0).float() - b0).abs().max()) / scale
    own = float((itself.select(bd, 0).float() - b0).abs().max()) / scale
    return leak, own


batch_independence, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
