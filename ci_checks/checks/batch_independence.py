"""batch-independence: in eval mode, sample i's prediction does not depend on sample j's input.

Also, for a causal sequence model (position 0 ignores every later position), no earlier position reads a later
one: a causal mask that leaks is the same kind of bug, a view mixing the time axis instead of the batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ci_checks.results import CheckResult
from ci_checks.checks import standalone

if TYPE_CHECKING:
    import torch

    from ci_checks.engine.session import Session

NAME = "batch-independence"
HELP = (
    "in eval mode, changing sample j's input does not change sample i's output (no mixing across the batch), "
    "and a causal model's earlier positions do not read later ones"
)
SETTINGS: dict[str, Any] = {"tolerance": 1e-5}

EVAL_FORWARD = "the model's forward in eval mode (model.eval(), torch.no_grad())"
_CAUSES = (
    "a view/reshape/transpose mixing the batch axis, or attention/normalization/recurrence over dim {bd}; "
    "if the batch is not on axis 0, set batch_dim in the spec"
)


class _Probe(NamedTuple):
    """How much one probed sample's output moved: through its own input, and at most through another sample's."""

    sample: int
    leak: float
    own: float
    source: int | None  # the other sample whose input moved it most (None: not pinned down)

    @property
    def ratio(self) -> float:
        return self.leak / self.own if self.own > 0 else (math.inf if self.leak > 0 else 0.0)


def needs(settings: Mapping[str, Any]) -> None:
    """Probes a fresh model in eval mode: no training."""
    return None


def _probed_samples(n: int) -> list[int]:
    """The first, middle and last sample: mixing under a causal mask spares the first and shows in the last."""
    return sorted({0, n // 2, n - 1})


def check(session: Session) -> CheckResult:
    import torch

    from ci_checks.engine import tree as _tree
    from ci_checks.engine.harness import probe_mode
    from ci_checks.engine.usercode import UserCodeError, call_user, first_line, raised_by_kit, user_location

    h = session.harness
    result = CheckResult(NAME)
    bd = h.spec.batch_dim
    n = _tree.batch_size(h.inputs, bd)
    if n is None or n < 2:
        result.skipped = True
        result.summary = f"skipped: needs a batch of at least 2 samples along batch_dim={bd}"
        return result
    tol = float(session.opt(NAME, "tolerance"))
    samples = _probed_samples(n)
    # A fresh build, not preflight's model: its one forward in training mode may have set state that the eval
    # path needs, and an eval path that raises on an untrained model is a finding.
    model, _ = h.build()
    with probe_mode(model, training=False):
        try:
            with torch.no_grad():
                base = call_user(EVAL_FORWARD, lambda: _aligned(h, h.forward(model), n))
        except UserCodeError as e:
            result.add(
                "error",
                f"{NAME}: {e.describe()} - the model must also run for inference; look for code that only works in "
                "training mode (a branch on self.training, state set only by a training forward)",
                location=e.location or h.spec.location,
            )
            result.summary = "the model's forward raised in eval mode"
            return result
        if base is None:
            result.skipped = True
            result.summary = "skipped: no prediction tensor with the batch axis (give prediction() or batch_dim)"
            return result
        try:
            method, probes = _probe(h, model, n, base.detach(), samples)
        except Exception as e:  # the kit's probe, not the user's training: a model it cannot drive is a skip
            loc = user_location(e.__traceback__)
            why = f"{type(e).__name__}: {first_line(e)}" + (f" at {loc}" if loc else "")
            if raised_by_kit(e):
                why = f"a bug of ci-checks, please report it: {why}"
            result.skipped = True
            result.summary = f"skipped: the probe could not run on this model ({why})"
            return result
    result.figures.update(batch_size=n, batch_dim=bd, method=method, probed_samples=samples)
    if any(not math.isfinite(p.own) or math.isnan(p.leak) for p in probes):
        result.skipped = True
        result.summary = (
            f"skipped: NaN or Inf in the eval-mode outputs or input gradients of samples {_join(samples)} "
            f"({method}); leak and own effect cannot be compared (finite-values looks for the source)"
        )
        return result
    if all(p.own == 0.0 and p.leak == 0.0 for p in probes):
        result.skipped = True
        result.summary = f"skipped: the outputs of samples {_join(samples)} do not depend on their own inputs either"
        return result
    leaking = [p for p in probes if p.leak > tol * max(p.own, 1e-12)]
    worst = max(leaking or probes, key=lambda p: p.ratio)
    if leaking and worst.source is None:
        with probe_mode(model, training=False):
            try:
                worst = worst._replace(source=_source(h, model, n, base.detach(), worst, tol))
            except Exception:  # the bisection only names the source: the leak is established without it
                pass
    ratio = worst.ratio
    result.figures.update(leak=worst.leak, own_effect=worst.own, leak_ratio=ratio, sample=worst.sample)
    result.summary = (
        f"outputs of samples {_join(samples)} vs the other samples' inputs ({method}): "
        f"max leak {ratio:.2g} of own effect"
    )
    if leaking:
        result.figures["leaked_from"] = worst.source
        src = "other samples' inputs" if worst.source is None else f"sample {worst.source}'s input"
        mixed = [p.sample for p in leaking]
        clean = [p.sample for p in probes if p not in leaking]
        also = f"; probed samples {_and(samples)} all leak"
        if clean:
            also = f"; probed samples {_and(mixed)} leak, {_and(clean)} {'does' if len(clean) == 1 else 'do'} not"
            if max(clean) < min(mixed):
                also += ", as when samples mix under a causal mask"
        result.add(
            "error",
            f"{NAME}: sample {worst.sample}'s output depends on {src} (leak {worst.leak:.3g} vs own effect "
            f"{worst.own:.3g}{also}) - " + _CAUSES.format(bd=bd),
            location=h.spec.location,
            sample=worst.sample,
            leaked_from=worst.source,
            leak=worst.leak,
            own=worst.own,
        )
    try:
        with probe_mode(model, training=False):
            causal, ahead = _causal_probe(h, model, n, base.detach(), tol, expect_causal=_next_token_targets(h))
    except Exception:  # the kit's probe: a model it cannot drive gives no verdict on its causal mask
        causal, ahead = False, None
    result.figures["causal"] = causal
    if causal:
        result.summary += "; causal mask leaks" if ahead else "; causal mask holds"
    if ahead is not None:
        src = "a later position's input" if ahead.source is None else f"position {ahead.source}'s input"
        result.figures.update(causal_leak=ahead.leak, causal_own_effect=ahead.own)
        why = (
            "the targets are the inputs shifted by one position (next-token prediction), so the model sees the "
            "token it must predict - the causal mask is missing or not applied (a masked_fill whose result is "
            "unused, a mask of ones, is_causal=False)"
            if ahead.position == 0
            else "though position 0's output ignores every later position as in a causal model - the causal mask "
            "leaks: a view that mixes the time axis with the heads (q.view(B, nh, T, hs) instead of "
            "q.view(B, T, nh, hs).transpose(1, 2)), or a mask shifted by one"
        )
        result.add(
            "error",
            f"{NAME}: in sample 0, position {ahead.position}'s output depends on {src} (leak {ahead.leak:.3g} vs "
            f"own effect {ahead.own:.3g}), {why}",
            location=h.spec.location,
            position=ahead.position,
            read_ahead_from=ahead.source,
            leak=ahead.leak,
            own=ahead.own,
        )
    return result


def _probe(h: Any, model: Any, n: int, base: torch.Tensor, samples: list[int]) -> tuple[str, list[_Probe]]:
    """Measure each probed sample's leak and own effect: input gradients for float inputs, else perturbation."""
    from ci_checks.engine import tree as _tree

    bd = h.spec.batch_dim
    batched = [t for _, t in _tree.leaves(h.inputs) if t.dim() > bd and t.shape[bd] == n]
    if batched and all(t.is_floating_point() for t in batched):
        try:
            probes = _gradient_probes(h, model, n, samples)
        except Exception:  # no backward through this model (an in-place op autograd rejects): perturb instead
            probes = None
        if probes is not None and any(p.own > 0 for p in probes):
            return "input gradient", probes
    # token ids have no input gradient (nor do outputs the model detaches): replace whole samples instead
    return "perturbing other samples", _perturbation_probes(h, model, n, base, samples)


def _aligned(h: Any, outputs: Any, n: int) -> Any:
    """The prediction with its batch axis at batch_dim.

    Un-flattens outputs whose first axis is the input's leading axes flattened: [T*N, V] logits of a time-major
    model (batch_dim=1), or [N*T, V] of a batch-first one (`logits.view(-1, V)`).
    """
    from ci_checks.engine import tree as _tree

    pred = h.prediction(outputs)
    bd = h.spec.batch_dim
    if pred is None or pred.dim() == 0:
        return None
    if pred.dim() > bd and pred.shape[bd] == n:
        return pred
    for _, t in _tree.leaves(h.inputs):
        if t.dim() > bd and t.shape[bd] == n:
            for k in range(max(2, bd + 1), t.dim() + 1):
                lead = list(t.shape[:k])
                if pred.shape[0] == math.prod(lead):
                    return pred.reshape(*lead, *pred.shape[1:])
            break
    return None


def _gradient_probes(h: Any, model: Any, n: int, samples: list[int]) -> list[_Probe] | None:
    """One forward, then one backward per probed sample: the input-gradient mass each sample gets."""
    import torch

    from ci_checks.engine import tree as _tree

    bd = h.spec.batch_dim
    watched: list[torch.Tensor] = []

    def watch(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point() and t.dim() > bd and t.shape[bd] == n:
            t = t.detach().clone().requires_grad_(True)
            watched.append(t)
        return t

    inputs = _tree.map_tree(h.inputs, watch)
    pred = _aligned(h, h.forward(model, inputs), n)
    if pred is None or not pred.requires_grad:
        return None
    gen = torch.Generator().manual_seed(1234)
    probes = []
    for k, i in enumerate(samples):
        out = pred.select(h.spec.batch_dim, i).float()
        # Random weights, not a plain sum: the sum of a softmax's outputs is constant and has no gradient at all.
        weights = torch.randn(tuple(out.shape), generator=gen).to(out.device)
        grads = torch.autograd.grad(
            (out * weights).sum(), watched, allow_unused=True, retain_graph=k < len(samples) - 1
        )
        mass = torch.zeros(n, dtype=torch.float64)
        for g in grads:
            if g is not None:
                mass += g.detach().abs().movedim(bd, 0).reshape(n, -1).double().sum(1).cpu()
        others = torch.cat([mass[:i], mass[i + 1 :]])
        j = int(others.argmax())
        probes.append(_Probe(i, float(others[j]), float(mass[i]), j if j < i else j + 1))
    return probes


class _Perturber:
    """Forward passes with whole samples (or some positions of one) replaced: noise on floats, other ids for tokens.

    Positions run along the axis next to the batch axis (time in [N, T] and [T, N] inputs); `length` is its size
    when the prediction has that axis too (a sequence model), else None.
    """

    def __init__(self, h: Any, model: Any, n: int, base: torch.Tensor) -> None:
        import torch

        from ci_checks.engine import tree as _tree

        self.h, self.model, self.n = h, model, n
        self.bd = h.spec.batch_dim
        self.base = base.movedim(self.bd, 0)  # [n, T?, ...]
        self.gen = torch.Generator().manual_seed(1234)
        self.scale: dict[int, float] = {}
        self.length: int | None = None
        if self.base.dim() >= 2 and self.bd in (0, 1):
            t = int(self.base.shape[1])
            for _, x in _tree.leaves(h.inputs):
                if x.dim() >= 2 and x.shape[self.bd] == n and x.movedim(self.bd, 0).shape[1] == t:
                    self.length = t

    def outputs(self, which: Sequence[int], positions: Sequence[int] | None = None) -> torch.Tensor:
        """The prediction, batch axis first, with the samples in `which` replaced (only `positions` of them)."""
        import torch

        from ci_checks.engine import tree as _tree

        idx = torch.tensor(sorted(which), dtype=torch.long)
        pos = None if positions is None else torch.tensor(sorted(positions), dtype=torch.long)

        def fn(t: torch.Tensor) -> torch.Tensor:
            if t.dim() <= self.bd or t.shape[self.bd] != self.n:
                return t
            moved = t.movedim(self.bd, 0).clone()
            if pos is not None and (moved.dim() < 2 or moved.shape[1] != self.length):
                return t  # an input without the positions (lengths, a per-sample feature): left alone
            rows = idx.to(t.device)
            part = moved[rows] if pos is None else moved[rows][:, pos.to(t.device)]
            if t.is_floating_point():
                spread = float(t.detach().float().std(correction=0)) if t.numel() > 1 else 0.0
                noise = torch.randn(tuple(part.shape), generator=self.gen).to(part)
                part = part + noise * (spread + 1.0)
            else:  # token ids: draw other ids already present in the batch, so they stay valid
                part = self._other_ids(t.reshape(-1), part)
            if pos is None:
                moved[rows] = part
            else:
                block = moved[rows]
                block[:, pos.to(t.device)] = part
                moved[rows] = block
            return moved.movedim(0, self.bd)

        with torch.no_grad():
            pred = _aligned(self.h, self.h.forward(self.model, _tree.map_tree(self.h.inputs, fn)), self.n)
        if pred is None:
            raise ValueError("the perturbed batch gave no prediction with the batch axis")
        out: torch.Tensor = pred.detach().movedim(self.bd, 0)
        return out

    def _other_ids(self, pool: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        import torch

        def draw(shape: tuple[int, ...]) -> torch.Tensor:
            picks = torch.randint(0, pool.numel(), shape, generator=self.gen)
            return pool[picks.to(pool.device)]

        new = draw(tuple(part.shape))
        for _ in range(8):  # a sample that drew exactly its own ids again would show no effect: draw it again
            same = (new == part).reshape(part.shape[0], -1).all(1)
            if not bool(same.any()):
                break
            new[same] = draw(tuple(new[same].shape))
        return new

    def moved(self, pred: torch.Tensor, i: int, positions: Sequence[int] | None = None) -> torch.Tensor:
        """Per position (or per element) how far sample i's output moved, relative to its largest finite value."""
        import torch

        before, after = self.base[i].float(), pred[i].float()
        if i not in self.scale:
            finite = before[torch.isfinite(before)].abs()
            self.scale[i] = float(finite.max()) if finite.numel() and float(finite.max()) > 0 else 1.0
        if positions is not None:
            index = torch.tensor(sorted(positions), dtype=torch.long, device=before.device)
            before, after = before[index], after[index]
        diff = torch.where(after == before, torch.zeros_like(after), (after - before).abs())  # equal infinities
        return diff / self.scale[i]

    def effect(self, pred: torch.Tensor, i: int, positions: Sequence[int] | None = None) -> float:
        d = self.moved(pred, i, positions)
        return float(d.max()) if d.numel() else 0.0


def _perturbation_probes(h: Any, model: Any, n: int, base: torch.Tensor, samples: list[int]) -> list[_Probe]:
    """Two forwards per probed sample: replace it alone (own effect), replace all the others (leak)."""
    p = _Perturber(h, model, n, base)
    probes = []
    for i in samples:
        own = p.effect(p.outputs([i]), i)
        leak = p.effect(p.outputs([j for j in range(n) if j != i]), i)
        probes.append(_Probe(i, leak, own, None))
    return probes


def _source(h: Any, model: Any, n: int, base: torch.Tensor, probe: _Probe, tol: float) -> int | None:
    """Bisect the other samples for one whose input alone moves the probed sample's output (log2(n) forwards)."""
    p = _Perturber(h, model, n, base)
    i = probe.sample
    return _bisect([j for j in range(n) if j != i], lambda js: p.effect(p.outputs(js), i) > tol * max(probe.own, 1e-12))


def _bisect(candidates: list[int], moves: Callable[[list[int]], bool]) -> int | None:
    """One candidate that moves the output alone, halving the candidates; None if only several together do."""
    while len(candidates) > 1:
        half = candidates[: len(candidates) // 2]
        candidates = half if moves(half) else candidates[len(candidates) // 2 :]
    return candidates[0] if moves(candidates) else None


class _CausalLeak(NamedTuple):
    """Sample 0 of a sequence model whose position 0 ignores later positions: what an earlier position read later."""

    position: int  # an output position that moved
    source: int | None  # a later input position that moved it (None: not pinned down)
    leak: float
    own: float


def _next_token_targets(h: Any) -> bool:
    """Whether the batch is next-token prediction: integer targets that are the inputs shifted one position along
    the time axis (ignored targets, below 0, left out). Such a model must be causal whatever it looks like."""
    import torch

    x, y = h.inputs, h.targets
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.dim() != 2 or x.shape != y.shape:
        return False
    if x.is_floating_point() or y.is_floating_point() or x.shape[1 - h.spec.batch_dim] < 3:
        return False
    time = 1 - h.spec.batch_dim
    nxt, now = x.narrow(time, 1, x.shape[time] - 1), y.narrow(time, 0, y.shape[time] - 1)
    kept = now >= 0
    return bool(kept.sum() >= 2) and bool((now[kept] == nxt[kept]).all())


def _causal_probe(
    h: Any, model: Any, n: int, base: torch.Tensor, tol: float, *, expect_causal: bool = False
) -> tuple[bool, _CausalLeak | None]:
    """Whether the model is a causal sequence model, and if so where an earlier position reads a later one.

    With expect_causal (next-token targets), a position 0 that reads later positions is itself the leak.

    A causal model is one whose position 0 ignores every later input position. Cutting the sequence at a quarter,
    half and three quarters, the outputs before the cut must then ignore the inputs after it; a mask that leaks
    (time mixed with heads by a view, a mask shifted by one) lets some of them read ahead, but never position 0,
    which attends only to itself. About six forwards, plus a bisection for the source when it leaks.
    """
    p = _Perturber(h, model, n, base)
    T = p.length
    if T is None or T < 3:
        return False, None
    first, rest = [0], list(range(1, T))
    own0 = p.effect(p.outputs([0], first), 0, first)
    if not own0 > 0 or not math.isfinite(own0):
        return False, None
    leak0 = p.effect(p.outputs([0], rest), 0, first)
    if not leak0 <= tol * own0:
        if not expect_causal or not math.isfinite(leak0):
            return False, None
        source = _bisect(rest, lambda ss: p.effect(p.outputs([0], ss), 0, first) > tol * own0)
        return True, _CausalLeak(0, source, leak0, own0)
    own = p.effect(p.outputs([0], list(range(T))), 0)
    worst: _CausalLeak | None = None
    for cut in sorted({c for c in (T // 4, T // 2, 3 * T // 4) if 2 <= c < T}):
        before, after = list(range(cut)), list(range(cut, T))
        moved = p.moved(p.outputs([0], after), 0, before).reshape(cut, -1).amax(1)
        leak = float(moved.max())
        if leak > tol * max(own, 1e-12) and (worst is None or leak > worst.leak):
            t = int(moved.argmax())
            worst = _CausalLeak(t, None, leak, own)
            threshold = tol * max(own, 1e-12)
            source = _bisect(after, lambda ss: p.effect(p.outputs([0], ss), 0, [t]) > threshold)
            worst = worst._replace(source=source)
    return True, worst


def _join(xs: Sequence[int]) -> str:
    return ", ".join(str(x) for x in xs)


def _and(xs: Sequence[int]) -> str:
    return " and ".join(s for s in (_join(xs[:-1]), str(xs[-1])) if s)


batch_independence, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
