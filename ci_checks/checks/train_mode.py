"""train-mode: the step runs the model in training mode and the model's state lives in its state_dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone
from ci_checks.engine.session import RunNeeds

if TYPE_CHECKING:
    from ci_checks.engine.session import Session

NAME = "train-mode"
HELP = "the step trains in training mode, BatchNorm statistics update, and state lives in registered buffers"
SETTINGS: dict[str, Any] = {}


def needs(settings: Mapping[str, Any]) -> RunNeeds:
    """The modes and buffers of the shared run; step 2 shows a mode the first step left behind."""
    return RunNeeds(min_steps=2)


def check(session: Session) -> CheckResult:
    from ci_checks.engine.harness import matches

    result = CheckResult(NAME)
    if session.step_failed(result):
        return result
    h = session.harness
    run = session.main_run()
    loc = session.location
    forwards = len(run.root_modes)  # forwards with autograd on, inside the step
    evals = sum(1 for m in run.root_modes if not m)
    result.figures.update(forwards=forwards, eval_forwards=evals, mode_dependent=len(run.mode_dependent))
    if sum(run.forward_calls) == 0:
        result.add(
            "error",
            f"{NAME}: the training step never called the model it was given - it trains another "
            "object (a copy, or a global model)",
            location=loc,
        )
    elif evals and run.mode_dependent:
        result.add(
            "error",
            f"{NAME}: {evals} of {forwards} forward passes in the training step ran in eval mode, "
            f"so {', '.join(run.mode_dependent[:3])} behaved as in evaluation - call model.train() in the step "
            "(an evaluation pass left the model in eval mode)",
            location=loc,
            eval_forwards=evals,
        )
    frozen = tuple(h.spec.frozen)
    for name, updated in run.bn_updated.items():
        if not updated and not evals and not matches(name, frozen) and not matches(name + ".weight", frozen):
            result.add(
                "warning",
                f"{NAME}: BatchNorm {name} did not update its running statistics in a training "
                "step (set to eval() inside the step, or momentum=0?) - declare it in 'frozen' if intended",
                location=loc,
                module=name,
            )
    for name, changed in run.plain_tensors.items():
        if changed:
            result.add(
                "error",
                f"{NAME}: {name} is a plain tensor attribute that training changes, so state_dict and "
                "checkpoints lose it - register it with self.register_buffer()",
                location=loc,
                attribute=name,
            )
        else:
            result.add(
                "warning",
                f"{NAME}: {name} is a plain tensor attribute: .to(device) does not move it and "
                "state_dict does not hold it - register it with self.register_buffer(..., persistent=False)",
                location=loc,
                attribute=name,
            )
    bn = len(run.bn_updated)
    result.summary = f"{forwards - evals}/{forwards} forwards in training mode" + (
        f", {sum(run.bn_updated.values())}/{bn} BatchNorm layers updated" if bn else ""
    )
    return result


train_mode, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
