"""checkpoint: save with the user's code, restore into fresh objects, continue; it must match an uninterrupted run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds

if TYPE_CHECKING:
    from ci_checks.engine.session import Session

NAME = "checkpoint"
HELP = "train, save, restore into fresh objects, continue: matches the uninterrupted run"
SETTINGS: dict[str, Any] = {"steps-before": 3, "steps-after": 2, "rtol": 1e-5, "atol": 1e-7}


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """A checkpoint after steps-before, and the state steps-after later to compare the resumed run with."""
    before, after = int(settings["steps-before"]), int(settings["steps-after"])
    return RunNeeds(min_steps=before + after, keep_states=(before + after,), checkpoint_step=before)


def check(session: Session) -> CheckResult:
    import os

    from ci_checks.engine.states import close_numbers, first_difference
    from ci_checks.engine.usercode import UserCodeError

    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    h = session.harness
    run = session.main_run()
    before, after = int(session.opt(NAME, "steps-before")), int(session.opt(NAME, "steps-after"))
    why = None
    if run.stale_grad is not None:
        why = "gradients carry over between steps (missing zero_grad, see parameter-updates)"
    elif session.facts.get("reproducible") is False:
        why = "two runs with the same seed already differ (see reproducibility)"
    elif run.mode_dependent and not all(run.root_modes):
        why = "the step trains in eval mode while a restored model starts in training mode (see train-mode)"
    elif any(run.plain_tensors.values()):
        why = "the model keeps state in plain tensor attributes, outside its state_dict (see train-mode)"
    elif h.spec.save_checkpoint is None and len({lr for lr in run.lrs[: before + after] if lr is not None}) > 1:
        why = (
            "a learning-rate scheduler changes the learning rate, and the default checkpoint holds only the model "
            "and the optimizer (give save_checkpoint/load_checkpoint in the spec to test resuming with it)"
        )
    if why is not None:
        result.skipped = True
        result.summary = f"skipped: {why}, so no resumed run can match"
        if run.checkpoint_path and os.path.exists(run.checkpoint_path):
            os.remove(run.checkpoint_path)
        return result
    rtol, atol = float(session.opt(NAME, "rtol")), float(session.opt(NAME, "atol"))
    result.figures.update(steps_before=before, steps_after=after, custom=h.spec.save_checkpoint is not None)
    try:
        if run.checkpoint_error is not None:
            e = run.checkpoint_error
            result.add("error", f"{NAME}: {e.describe()}", location=e.location or h.spec.location)
            return result
        try:
            losses, loaded, final = h.resume(run, before, after)
        except UserCodeError as e:
            result.add(
                "error",
                f"{NAME}: restoring the checkpoint or training after it: {e.describe()}",
                location=e.location or h.spec.location,
            )
            return result
    finally:
        if run.checkpoint_path and os.path.exists(run.checkpoint_path):
            os.remove(run.checkpoint_path)
    name, diff = first_difference(run.state_at[before], loaded, rtol, atol)
    if name is not None:
        result.add(
            "error",
            f"{NAME}: the restored model differs from the saved one ({name}, max diff {diff:.3g}) - "
            "the checkpoint misses model state (a buffer or parameter not in state_dict, or not loaded)",
            location=h.spec.location,
            tensor=name,
        )
        result.summary = "restored model differs from the saved one"
        return result
    expected = run.losses[before : before + after]
    name, diff = first_difference(run.state_at[before + after], final, rtol, atol)
    loss_diff = max((abs(a - b) for a, b in zip(losses, expected)), default=0.0)
    result.figures.update(max_loss_diff=loss_diff, max_param_diff=diff)
    result.summary = (
        f"resumed after step {before}: max loss diff {loss_diff:.2g}, max parameter diff {diff:.2g} after {after} more"
    )
    if name is not None or not all(close_numbers(a, b, rtol, atol) for a, b in zip(losses, expected)):
        result.add(
            "error",
            f"{NAME}: training resumed from the checkpoint diverges from the uninterrupted run "
            f"({name or 'loss'} differs by {max(diff, loss_diff):.3g} after {after} steps) although the model "
            "was restored - optimizer state (momentum, Adam moments, step count) or the LR scheduler is "
            "not saved or not loaded",
            location=h.spec.location,
            tensor=name,
            max_diff=max(diff, loss_diff),
        )
    return result


checkpoint, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
