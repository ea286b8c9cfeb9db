"""reproducibility: two runs with the same seed give the same losses and parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ci_checks._report import CheckResult
from ci_checks.checks import standalone

if TYPE_CHECKING:
    from ci_checks.checks import Session

NAME = "reproducibility"
HELP = "two runs with the same seed give the same losses and parameters"
SETTINGS: dict[str, Any] = {"steps": 3, "rtol": 1e-5, "atol": 1e-7}


def check(session: Session) -> CheckResult:
    from ci_checks._harness import StepFailed

    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    h = session.harness
    run = session.main_run()
    steps = int(session.opt(NAME, "steps"))
    rtol, atol = float(session.opt(NAME, "rtol")), float(session.opt(NAME, "atol"))
    model, optimizer = h.build()
    losses = []
    try:
        for i in range(steps):
            losses.append(h.step(model, optimizer))
    except Exception as e:
        result.add(
            "error",
            f"{NAME}: the second run raised where the first did not: " f"{StepFailed(i + 1, e).describe()}",
            location=session.location,
        )
        return result
    loss_diff = max((abs(a - b) for a, b in zip(losses, run.losses)), default=0.0)
    name, diff = _first_difference(run.state_at[steps], _state(model), rtol, atol)
    result.figures.update(steps=steps, max_loss_diff=loss_diff, max_param_diff=diff)
    result.summary = f"{steps} steps twice: max loss diff {loss_diff:.2g}, max parameter diff {diff:.2g}"
    bad_loss = next((i for i, (a, b) in enumerate(zip(losses, run.losses)) if not _close(a, b, rtol, atol)), None)
    session.reproducible = name is None and bad_loss is None
    if session.reproducible:
        return result
    init_name, _ = _first_difference(_state(h.build()[0]), _state(h.build()[0]), rtol, atol)
    if init_name is not None:
        where = (
            f"two models built with seed {h.seed} differ at init ({init_name}) - model_factory/setup draws "
            "randomness the seed does not control (np.random.default_rng() or torch.Generator() without a "
            "seed, random.SystemRandom, a seed from time)"
        )
    elif bad_loss is not None:
        where = (
            f"the loss differs from step {bad_loss + 1} ({run.losses[bad_loss]:.6g} vs {losses[bad_loss]:.6g}) - "
            "the step or forward draws unseeded randomness (np.random.default_rng() with no seed, "
            "a generator seeded from time) or uses nondeterministic kernels"
        )
    else:
        where = (
            f"the parameters differ after {steps} steps ({name}, max diff {diff:.3g}) - unseeded randomness in the "
            "update, or nondeterministic kernels (torch.use_deterministic_algorithms(True) finds them)"
        )
    result.add(
        "error",
        f"{NAME}: two runs with the same seed differ: {where}",
        location=session.location,
        max_loss_diff=loss_diff,
        max_param_diff=diff,
        tensor=name,
    )
    return result


def _state(model: Any) -> dict[str, Any]:
    return {k: v.detach() for k, v in model.state_dict().items()}


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    # NaN at the same step in both runs is a match, as equal_nan=True is for the parameters
    return a == b or (a != a and b != b) or abs(a - b) <= atol + rtol * abs(b)


def _first_difference(a: dict[str, Any], b: dict[str, Any], rtol: float, atol: float) -> tuple[str | None, float]:
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


reproducibility, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
