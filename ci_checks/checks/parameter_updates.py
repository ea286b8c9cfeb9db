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


def check(session: Session) -> CheckResult:
    from ci_checks.engine.harness import matches

    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    run = session.main_run()
    frozen = tuple(session.harness.spec.frozen)
    loc = session.location
    problems = 0
    for name, changed_by in run.changes.items():
        changed = changed_by > 0.0
        grad = run.grad_norms.get(name)
        if matches(name, frozen):
            if changed:
                problems += 1
                result.add(
                    "error",
                    f"{NAME}: {name} is declared frozen but changed by {changed_by:.3g} in one step - set "
                    "requires_grad=False on it and leave it out of the optimizer (weight decay moves it too)",
                    location=loc,
                    parameter=name,
                    change=changed_by,
                )
            continue
        if not run.requires_grad[name]:
            problems += 1
            result.add(
                "error",
                f"{NAME}: {name} has requires_grad=False but is not declared frozen - a layer frozen by "
                "accident? If it is meant to be, add it to the spec's 'frozen' patterns",
                location=loc,
                parameter=name,
            )
            continue
        if grad is None:
            problems += 1
            result.add(
                "error",
                f"{NAME}: {name} received no gradient - not connected to the loss (unused layer, a "
                ".detach()/.data on the path, or an output left out of the loss)",
                location=loc,
                parameter=name,
            )
            continue
        if changed:
            continue
        problems += 1
        lr = run.lr_by_param.get(name)
        if not run.in_optimizer[name]:
            why = "it is not in the optimizer: the optimizer was built over other (stale) parameters"
        elif lr == 0:
            why = "its learning rate is 0"
        elif grad == 0.0:
            why = "its gradient is exactly zero"
        else:
            result.add(
                "warning",
                f"{NAME}: {name} did not change in one step although its gradient norm is {grad:.3g} "
                "(a bias before BatchNorm gets ~0 gradient; otherwise check the learning rate)",
                location=loc,
                parameter=name,
                grad_norm=grad,
            )
            continue
        result.add(
            "error",
            f"{NAME}: {name} did not change after one step (gradient norm {grad:.3g}): {why}",
            location=loc,
            parameter=name,
            grad_norm=grad,
            lr=lr,
        )
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
            "after the update had already used it - missing optimizer.zero_grad() (gradients accumulate across steps)",
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
