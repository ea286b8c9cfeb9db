"""loss-decreases: the loss goes down over the first steps."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds

if TYPE_CHECKING:
    from ci_checks.engine.session import Session

NAME = "loss-decreases"
HELP = "the loss is lower after the first few steps than at the start"
SETTINGS: dict[str, Any] = {"steps": 10}


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """The window of first steps."""
    return RunNeeds(min_steps=int(settings["steps"]))


def check(session: Session) -> CheckResult:
    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    run = session.main_run()
    window = run.losses[: int(session.opt(NAME, "steps"))]
    result.series["loss"] = window
    if len(window) < 2:
        result.skipped = True
        result.summary = "skipped: fewer than 2 steps ran"
        return result
    first = window[0]
    tail = sorted(window[-3:])[len(window[-3:]) // 2]  # median of the last three: robust to dropout noise
    result.figures.update(first_loss=first, last_loss=window[-1], steps=len(window))
    result.summary = f"loss {first:.4g} -> {tail:.4g} over {len(window)} steps"
    if run.params_changed_at is None or run.params_changed_at > len(window):
        # Dropout noise alone can make a later loss lower: without an update that is not learning.
        result.add(
            "error",
            f"{NAME}: no parameter changed in the first {len(window)} steps, so the loss ({first:.4g} -> {tail:.4g}) "
            "moved by noise only - see parameter-updates (gradients cleared before the update, learning rate 0, "
            "frozen parameters or a detached loss)",
            location=session.location,
            first_loss=first,
            last_loss=tail,
        )
    elif not (math.isfinite(first) and math.isfinite(tail)):
        result.add(
            "error",
            f"{NAME}: the loss became non-finite within {len(window)} steps ({first:.4g} -> {tail:.4g})"
            " - learning rate far too high",
            location=session.location,
        )
    elif tail >= first:
        trend = "rose" if tail > first + 1e-6 * max(1.0, abs(first)) else "stayed flat"
        hint = (
            "learning rate too high (exploding), or targets that change every step"
            if trend == "rose"
            else "learning rate 0, frozen parameters, or a loss detached from the model"
        )
        result.add(
            "error",
            f"{NAME}: the loss {trend} over the first {len(window)} steps ({first:.4g} -> {tail:.4g})" f" - {hint}",
            location=session.location,
            first_loss=first,
            last_loss=tail,
        )
    return result


loss_decreases, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
