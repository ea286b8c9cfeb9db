"""memorization: train on one batch until it is fit; record steps-to-memorize and the loss curve."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds
from ci_checks.results import CheckResult

if TYPE_CHECKING:
    from ci_checks.engine.harness import Harness, Run
    from ci_checks.engine.session import Session

NAME = "memorization"
HELP = "the model can fit (memorize) one small batch within a step budget, and does not stall on the way"
SETTINGS: dict[str, Any] = {
    "max-steps": 500,
    "patience": 100,
    "max-seconds": 600.0,
    "target-accuracy": 1.0,
    "target-r2": 0.95,
    "target-loss": None,
    "target-relative": None,
}
SETTINGS_HELP = {
    "max-steps": "The step budget: not memorized by then is a failure.",
    "patience": "Stalled: neither accuracy/R^2 nor the loss improved for this many steps; a failure.",
    "max-seconds": "A wall-clock safety cap only; reaching it is inconclusive (a warning), never a verdict.",
}


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """Train until the batch is memorized, or no progress for `patience` steps, within the step budget.

    The wall-clock limit is only a safety cap: the verdict is decided by steps, the same on any machine.
    """
    # At least 10 steps before "nothing moves" or a non-finite loss ends the run: a warmup schedule may start at
    # learning rate 0, and the other checks' windows fit in it.
    patience = settings.get("patience")
    return RunNeeds(
        min_steps=min(10, int(settings["max-steps"])),
        max_steps=int(settings["max-steps"]),
        max_seconds=float(settings["max-seconds"]),
        stop_when=lambda harness: criterion(harness, settings),
        patience=None if patience is None else max(1, int(patience)),
    )


def criterion(harness: Harness, mem: Mapping[str, Any]) -> Callable[[float, float | None], bool]:
    """When is the batch memorized: an absolute or relative loss target if set, else the fit to the targets."""
    if mem.get("target-loss") is not None:
        target = float(mem["target-loss"])
        return lambda loss, fit: loss <= target
    kind = harness.task.kind
    if mem.get("target-relative") is None and kind in ("classification", "binary"):
        acc = float(mem["target-accuracy"])
        # Or a loss 20x below its start: a language-model batch has tokens no model can predict from their prefix,
        # so its accuracy tops out below 1.0 while the loss still falls to near its floor.
        return lambda loss, fit: (fit is not None and fit >= acc - 1e-9) or (
            _init(harness) > 0 and loss <= 0.05 * _init(harness)
        )
    if mem.get("target-relative") is None and kind == "regression":
        r2 = float(mem["target-r2"])
        return lambda loss, fit: fit is not None and fit >= r2
    rel = float(mem["target-relative"] if mem.get("target-relative") is not None else 0.05)
    return lambda loss, fit: loss <= _init(harness) - (1.0 - rel) * abs(_init(harness))


def _init(harness: Harness) -> float:
    """The first loss: the kit's on the whole batch, else the user's step's first (the run sets it at step 1)."""
    return math.nan if harness.init_loss is None else harness.init_loss


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
    k = max(run.best_step, 1)
    so_far = [f for f in run.fits[:k] if f is not None]
    at = f"{measure} {max(so_far):.3f}" if measure != "loss" and so_far else f"loss {run.losses[k - 1]:.4g}"
    best = (
        f"best {measure} {max(fits):.3f} (target {_target(mem, measure):.3g}), " if fits and measure != "loss" else ""
    )
    if run.stop_reason == "stalled":
        observed = (
            f"stalled since step {k} at {at}: no progress in the next "
            f"{len(run.losses) - run.best_step} steps (loss {first:.4g} -> {last:.4g})"
        )
    else:
        observed = (
            f"did not memorize one batch in {len(run.losses)} steps ({run.stop_reason}): {best}loss {first:.4g} -> "
            f"{last:.4g}"
        )
    result.figures["best_step"] = run.best_step
    if run.stop_reason == "time budget":
        # Out of wall-clock time before the step budget: a slow or loaded machine, not evidence either way.
        still = "the loss was still falling" if math.isfinite(last) and last < first else "no verdict"
        severity, why = "warning", (
            f"inconclusive: the {float(mem['max-seconds']):g} s safety cap stopped the run at step {len(run.losses)} "
            f"({still}); raise memorization.max-seconds, or lower max-steps"
        )
    else:
        severity, why = "error", _likely(run, fits, stalled=run.stop_reason == "stalled")
    result.add(
        severity,
        f"{NAME}: {observed} - {why}",
        location=session.location,
        steps=len(run.losses),
        initial_loss=first,
        final_loss=last,
        best_step=run.best_step,
    )
    result.summary = observed
    return result


def _target(mem: dict[str, Any], measure: str) -> float:
    return float(mem["target-accuracy"] if measure == "accuracy" else mem["target-r2"])


def _likely(run: Run, fits: list[float], *, stalled: bool) -> str:
    """The causes that fit what the run did: learning rate history, loss trend, parameters that never moved."""
    losses = run.losses
    first, last = losses[0], losses[-1]
    best = min((x for x in losses if math.isfinite(x)), default=math.nan)
    lrs = [lr for lr in run.lrs if lr is not None]
    if lrs and max(lrs) > 0 and lrs[-1] <= 1e-3 * max(lrs):
        peak = max(lrs)
        k = next(i for i, lr in enumerate(run.lrs, 1) if lr is not None and lr <= 1e-3 * peak)
        return (
            f"the learning rate decayed to {lrs[-1]:.3g} (below 1/1000 of its {peak:.3g} peak from step {k}): a "
            "scheduler stepped every batch, or with too small a step_size/gamma"
        )
    if lrs and max(lrs) == 0:
        return "the learning rate is 0"
    if run.stale_grad is not None:
        return "gradients accumulate across steps: zero_grad() is missing (see parameter-updates)"
    if run.cleared_before_update:
        return "gradients are cleared between backward() and the update (see parameter-updates)"
    if run.params_changed_at is None:
        return "no parameter changed: frozen parameters, learning rate 0, or a loss detached from the model"
    if not math.isfinite(last) or (math.isfinite(first) and last > first * 1.5 + 1e-3):
        return "likely an exploding learning rate or missing gradient clipping"
    if abs(last - first) <= 1e-4 * max(1.0, abs(first)) and abs(best - first) <= 1e-4 * max(1.0, abs(first)):
        return "likely learning rate 0, frozen/unused parameters, or a loss detached from the model"
    adaptive = any(name in run.optimizer for name in ("Adam", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Lion"))
    if stalled and adaptive and lrs and max(lrs) >= 1e-2:
        return (
            f"learning rate {max(lrs):.3g} is far too high for {run.optimizer} (its steps are about lr in size "
            "whatever the gradient: 1e-4..3e-3 is usual), so the weights were thrown off and training stuck"
        )
    window = [x for x in losses[run.best_step :] if math.isfinite(x)]
    if stalled and len(window) > 2 and max(window) - min(window) > 0.1 * max(abs(best), 1e-8):
        return (
            f"the loss oscillates between {min(window):.4g} and {max(window):.4g} without improving: learning rate "
            "too high for this model (or for the optimizer: Adam usually wants 1e-4..3e-3)"
        )
    if not stalled and fits and max(fits) < 0.5 and last < first:
        return (
            "the loss falls but predictions do not fit: likely targets shuffled/permuted between steps, "
            "double softmax, or a reshape that mixes samples"
        )
    if stalled:
        lr = f" (peak learning rate {max(lrs):.3g} with {run.optimizer})" if lrs else ""
        return (
            f"a learning rate too high or too low{lr}, a loss with a floor (double softmax, too much label "
            "smoothing), targets that change between steps, or detached or frozen parts of the model"
        )
    return (
        "likely targets that change between steps, a loss with a floor (double softmax), too small a "
        "learning rate, or a budget too small for this model (raise memorization.max-steps)"
    )


memorization, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
