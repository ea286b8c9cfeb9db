"""finite-values: no NaN or Inf in outputs, loss, gradients or parameters; names the first tensor where one appeared."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds

if TYPE_CHECKING:
    from ci_checks.engine.session import Session

NAME = "finite-values"
HELP = "no NaN/Inf in outputs, loss, gradients or parameters during training"
SETTINGS: dict[str, Any] = {}
WINDOW = 10


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """Watches every step of the shared run; alone, the first WINDOW steps, where a bad init or learning rate shows."""
    return RunNeeds(min_steps=WINDOW)


def check(session: Session) -> CheckResult:
    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    run = session.main_run()
    result.figures["steps_watched"] = len(run.losses)
    if run.nonfinite is None:
        result.summary = f"all finite over {len(run.losses)} steps"
        return result
    step, what = run.nonfinite
    first_loss = run.losses[0] if run.losses else math.nan
    # After the first steps the tensors are checked on a schedule: say when they were last seen finite.
    when = f"at step {step}" if run.finite_until >= step - 1 else f"by step {step} (finite at step {run.finite_until})"
    result.add(
        "error",
        f"{NAME}: NaN/Inf first appeared in {what} {when} (loss went {first_loss:.4g} -> "
        f"{run.losses[step - 1] if len(run.losses) >= step else math.nan:.4g}) - learning rate too high "
        "(exploding updates), log/sqrt/division of zero, or missing gradient clipping",
        location=session.location,
        step=step,
        tensor=what,
    )
    result.summary = f"non-finite {what} at step {step}"
    result.figures["first_nonfinite_step"] = step
    return result


finite_values, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
