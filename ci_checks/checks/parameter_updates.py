"""parameter-updates: after one step every trainable parameter got a finite, non-zero gradient and changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds

if TYPE_CHECKING:
    from ci_checks.engine.session import Session

NAME = "parameter-updates"
HELP = "after one step, every trainable parameter has a gradient and changes; frozen ones do not"
SETTINGS: dict[str, Any] = {}


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """Gradients and changes are recorded at step 1; a gradient left over from it (no zero_grad) shows at step 2."""
    return RunNeeds(min_steps=2)


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def check(session: Session) -> CheckResult:
    from ci_checks.engine.harness import matches

    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    run = session.main_run()
    frozen = tuple(session.harness.spec.frozen)
    loc = session.location
    # One finding per cause, listing the parameters it affects.
    moved_frozen: dict[str, float] = {}
    not_declared: list[str] = []
    no_grad: list[str] = []
    unchanged: dict[str, list[str]] = {}  # why -> parameters
    tiny: dict[str, float] = {}
    cleared = set(run.cleared_before_update)
    for name, changed_by in run.changes.items():
        changed = changed_by > 0.0
        grad = run.grad_norms.get(name)
        if matches(name, frozen):
            if changed:
                moved_frozen[name] = changed_by
            continue
        if not run.requires_grad[name]:
            not_declared.append(name)
        elif grad is None:
            no_grad.append(name)
        elif name in cleared:
            continue  # reported once below, changed or not (weight decay moves parameters without gradients)
        elif changed:
            continue
        elif not run.in_optimizer[name]:
            unchanged.setdefault("not in the optimizer: it was built over other (stale) parameters", []).append(name)
        elif run.lr_by_param.get(name) == 0:
            unchanged.setdefault("the learning rate is 0", []).append(name)
        elif grad == 0.0:
            unchanged.setdefault("the gradient is exactly zero", []).append(name)
        else:
            tiny[name] = grad
    if moved_frozen:
        result.add(
            "error",
            f"{NAME}: declared frozen but changed in one step: {_names(list(moved_frozen))} (up to "
            f"{max(moved_frozen.values()):.3g}) - set requires_grad=False on them and leave them out of the optimizer "
            "(weight decay moves them too)",
            location=loc,
            parameters=list(moved_frozen),
        )
    if not_declared:
        result.add(
            "error",
            f"{NAME}: requires_grad=False but not declared frozen: {_names(not_declared)} - frozen by accident? If "
            "meant to be, add them to the spec's 'frozen' patterns",
            location=loc,
            parameters=not_declared,
        )
    if no_grad:
        wanted = [n for n in run.changes if run.requires_grad[n] and not matches(n, frozen)]
        every = len(no_grad) == len(wanted)
        result.add(
            "error",
            f"{NAME}: {'no parameter' if every else f'{len(no_grad)} of {len(wanted)} parameter tensors'} "
            f"received a gradient{'' if every else ': ' + _names(no_grad)} - "
            + (
                "the loss is detached from the model (.detach(), .item(), .data or torch.no_grad() on the path)"
                if every
                else "not connected to the loss (an unused layer, a .detach()/.data on the path, or an output "
                "left out of the loss)"
            ),
            location=loc,
            parameters=no_grad,
        )
    if cleared:
        had = [n for n in run.changes if n in cleared]
        result.add(
            "error",
            f"{NAME}: gradients were cleared between backward() and optimizer.step() in step 1 ({len(had)} "
            f"tensors had a gradient after backward and none at the update: {_names(had)}) - zero_grad() is "
            "called after backward(); call it before the forward pass (or right after optimizer.step())",
            location=loc,
            parameters=had,
        )
    for why, names in unchanged.items():
        result.add(
            "error",
            f"{NAME}: did not change after one step: {_names(names)} - {why}",
            location=loc,
            parameters=names,
        )
    if tiny:
        result.add(
            "warning",
            f"{NAME}: did not change in one step although they have a gradient (norm up to "
            f"{max(tiny.values()):.3g}): {_names(names)} - a bias before BatchNorm gets ~0 gradient; otherwise check "
            "the learning rate",
            location=loc,
            parameters=list(tiny),
        )
    problems = len([f for f in result.findings if f.severity == "error"])
    if run.grad_norms and run.forward_calls and run.forward_calls[0] and 1 not in run.output_grad_steps:
        problems += 1
        result.add(
            "error",
            f"{NAME}: the loss does not depend on the model's output: in step 1 gradients reached the parameters "
            "only through another term (a regulariser), none through the output - is the output .detach()ed, "
            "or taken through .item()/.data/.numpy() before the loss?",
            location=loc,
        )
    if run.stale_grad is not None:
        problems += 1
        step, name = run.stale_grad
        result.add(
            "error",
            f"{NAME}: at step {step} the backward pass added to a gradient left from step {step - 1} in {name}.grad, "
            "after the update had already used it - missing zero_grad() (optimizer.zero_grad() or "
            "model.zero_grad(); gradients accumulate across steps)",
            location=loc,
            parameter=name,
            step=step,
        )
    if run.stale_optimizer_params:
        problems += 1
        result.add(
            "error",
            f"{NAME}: the optimizer holds {run.stale_optimizer_params} parameter tensor(s) that are not in the "
            "model - it was built before the model (or a layer) was replaced; build it from model.parameters()",
            location=loc,
            stale=run.stale_optimizer_params,
        )
    trainable = sum(1 for n in run.changes if run.requires_grad[n] and not matches(n, frozen))
    result.figures.update(
        parameters=len(run.changes),
        trainable=trainable,
        updated=sum(1 for n, c in run.changes.items() if c > 0 and not matches(n, frozen)),
        frozen=sum(1 for n in run.changes if matches(n, frozen)),
        max_grad_norm=max(run.grad_norms.values(), default=0.0),
    )
    result.summary = (
        f"{result.figures['updated']}/{trainable} trainable tensors updated"
        + (f", {result.figures['frozen']} frozen" if result.figures["frozen"] else "")
        + (f"; {problems} problem(s)" if problems else "")
    )
    return result


parameter_updates, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
