"""reproducibility: two runs with the same seed give the same losses and parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds
from ci_checks.engine.states import close_numbers, detached_state, first_difference

if TYPE_CHECKING:
    from ci_checks.engine.session import Session

NAME = "reproducibility"
HELP = "two runs with the same seed give the same losses and parameters"
SETTINGS: dict[str, Any] = {"steps": 3, "rtol": 1e-5, "atol": 1e-7}


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """The first run's state after `steps`; the second run is the check's own."""
    steps = int(settings["steps"])
    return RunNeeds(min_steps=steps, keep_states=(steps,))


def check(session: Session) -> CheckResult:
    from ci_checks.engine.usercode import UserCodeError

    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    h = session.harness
    run = session.main_run()
    steps = int(session.opt(NAME, "steps"))
    rtol, atol = float(session.opt(NAME, "rtol")), float(session.opt(NAME, "atol"))
    losses = []
    try:
        model, optimizer = h.build()
        for i in range(steps):
            losses.append(h.step(model, optimizer, i + 1))
    except UserCodeError as e:
        result.add(
            "error",
            f"{NAME}: the second run raised where the first did not: {e.describe()}",
            location=e.location or session.location,
        )
        return result
    loss_diff = max((abs(a - b) for a, b in zip(losses, run.losses)), default=0.0)
    name, diff = first_difference(run.state_at[steps], detached_state(model), rtol, atol)
    result.figures.update(steps=steps, max_loss_diff=loss_diff, max_param_diff=diff)
    result.summary = f"{steps} steps twice: max loss diff {loss_diff:.2g}, max parameter diff {diff:.2g}"
    pairs = enumerate(zip(losses, run.losses))
    bad_loss = next((i for i, (a, b) in pairs if not close_numbers(a, b, rtol, atol)), None)
    session.facts["reproducible"] = name is None and bad_loss is None
    if session.facts["reproducible"]:
        return result
    init_name, _ = first_difference(detached_state(h.build()[0]), detached_state(h.build()[0]), rtol, atol)
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


reproducibility, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
