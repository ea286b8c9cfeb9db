"""memorization: train on one batch until it is fit; record steps-to-memorize and the loss curve."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds
from ci_checks.results import CheckResult

if TYPE_CHECKING:
    from ci_checks.engine.harness import Harness
    from ci_checks.engine.session import Session

NAME = "memorization"
HELP = "the model can fit (memorize) one small batch within a step and time budget"
SETTINGS: dict[str, Any] = {
    "max-steps": 500,
    "max-seconds": 30.0,
    "target-accuracy": 1.0,
    "target-r2": 0.95,
    "target-loss": None,
    "target-relative": None,
}


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """Train until the batch is memorized, within the step budget (the wall-clock limit is a safety cap)."""
    # At least 10 steps before "nothing moves" or a non-finite loss ends the run: a warmup schedule may start at
    # learning rate 0, and the other checks' windows fit in it.
    return RunNeeds(
        min_steps=min(10, int(settings["max-steps"])),
        max_steps=int(settings["max-steps"]),
        max_seconds=float(settings["max-seconds"]),
        stop_when=lambda harness: criterion(harness, settings),
    )


def criterion(harness: Harness, mem: Mapping[str, Any]) -> Callable[[float, float | None], bool]:
    """When is the batch memorized: an absolute or relative loss target if set, else the fit to the targets."""
    init = harness.init_loss
    assert init is not None
    if mem.get("target-loss") is not None:
        target = float(mem["target-loss"])
        return lambda loss, fit: loss <= target
    kind = harness.task.kind
    if mem.get("target-relative") is None and kind in ("classification", "binary"):
        acc = float(mem["target-accuracy"])
        # Or a loss 20x below its start: a language-model batch has tokens no model can predict from their prefix,
        # so its accuracy tops out below 1.0 while the loss still falls to near its floor.
        return lambda loss, fit: (fit is not None and fit >= acc - 1e-9) or (init > 0 and loss <= 0.05 * init)
    if mem.get("target-relative") is None and kind == "regression":
        r2 = float(mem["target-r2"])
        return lambda loss, fit: fit is not None and fit >= r2
    rel = float(mem["target-relative"] if mem.get("target-relative") is not None else 0.05)
    target = init - (1.0 - rel) * abs(init)
    return lambda loss, fit: loss <= target


def check(session: Session) -> CheckResult:
    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    h = session.harness
    run = session.main_run()
    mem = session.settings[NAME]
    result.series["loss"] = run.losses
    fits = [f for f in run.fits if f is not None]
    if fits:
        result.series["fit"] = [f if f is not None else math.nan for f in run.fits]
    kind = h.task.kind
    measure = {"classification": "accuracy", "binary": "accuracy", "regression": "R^2"}.get(kind, "loss")
    if mem.get("target-loss") is not None or mem.get("target-relative") is not None:
        measure = "loss"
    first, last = run.losses[0], run.losses[-1]
    result.figures.update(
        steps_to_memorize=run.steps_to_memorize,
        steps_run=len(run.losses),
        seconds=round(run.seconds, 4),
        initial_loss=first,
        final_loss=last,
        best_fit=max(fits) if fits else None,
        measure=measure,
        stop_reason=run.stop_reason,
    )
    if run.steps_to_memorize is not None:
        reached = run.losses[run.steps_to_memorize - 1]
        result.summary = f"memorized in {run.steps_to_memorize} steps (loss {first:.4g} -> {reached:.4g})"
        return result
    best = (
        f"best {measure} {max(fits):.3f} (target {_target(mem, measure):.3g}), " if fits and measure != "loss" else ""
    )
    observed = (
        f"did not memorize one batch in {len(run.losses)} steps ({run.seconds:.1f}s, {run.stop_reason}): "
        f"{best}loss {first:.4g} -> {last:.4g}"
    )
    if run.stop_reason == "time budget" and math.isfinite(last) and last < first:
        # Out of wall-clock time while still learning: a slow or loaded machine, not evidence of a bug.
        severity, why = "warning", (
            "inconclusive: the loss was still falling; raise memorization.max-seconds (or run with fewer "
            "competing processes)"
        )
    else:
        severity, why = "error", _likely(run.losses, fits)
    result.add(
        severity,
        f"{NAME}: {observed} - {why}",
        location=session.location,
        steps=len(run.losses),
        initial_loss=first,
        final_loss=last,
    )
    result.summary = observed
    return result


def _target(mem: dict[str, Any], measure: str) -> float:
    return float(mem["target-accuracy"] if measure == "accuracy" else mem["target-r2"])


def _likely(losses: list[float], fits: list[float]) -> str:
    first, last = losses[0], losses[-1]
    best = min((x for x in losses if math.isfinite(x)), default=math.nan)
    if not math.isfinite(last) or (math.isfinite(first) and last > first * 1.5 + 1e-3):
        return "likely an exploding learning rate or missing gradient clipping"
    if abs(last - first) <= 1e-4 * max(1.0, abs(first)) and abs(best - first) <= 1e-4 * max(1.0, abs(first)):
        return "likely learning rate 0, frozen/unused parameters, or a loss detached from the model"
    if fits and max(fits) < 0.5 and last < first:
        return (
            "the loss falls but predictions do not fit: likely targets shuffled/permuted between steps, "
            "double softmax, or a reshape that mixes samples"
        )
    return (
        "likely targets that change between steps, a loss with a floor (double softmax), too small a "
        "learning rate, or a budget too small for this model (raise memorization.max-steps)"
    )


memorization, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
