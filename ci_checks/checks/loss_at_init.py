"""loss-at-init: the first loss is plausible for the task (about log(num_classes) for a fresh classifier)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone

if TYPE_CHECKING:
    import torch

    from ci_checks.engine.harness import Run, Task
    from ci_checks.engine.session import Session

NAME = "loss-at-init"
HELP = "the loss of the fresh model is plausible (log(C) for a C-class classifier), no double softmax"
SETTINGS: dict[str, Any] = {"expected-loss": None, "warn-ratio": 2.0, "fail-ratio": 4.0}


def needs(settings: Mapping[str, Any]) -> None:
    """Builds a fresh model and computes one loss: no training."""
    return None


def check(session: Session) -> CheckResult:
    h = session.harness
    result = CheckResult(NAME)
    task = h.task
    from_loss_fn = h.init_loss is not None  # else loss_fn could not run on the whole batch: the step's first loss
    run = session.main_run() if h.spec.train_step is not None else None
    loss = h.init_loss
    if loss is None:
        if not session.step_failed(result):
            result.skipped = True
            result.summary = "skipped: no first loss (loss_fn could not run on the batch, train_step gave none)"
        return result
    result.figures["initial_loss"] = loss
    result.figures["initial_loss_of"] = "loss_fn" if from_loss_fn else "train_step"
    loc = h.spec.location
    expected = session.opt(NAME, "expected-loss")
    if expected is None and task.kind == "classification" and task.num_classes:
        expected = math.log(task.num_classes)
    elif expected is None and task.kind == "binary":
        expected = math.log(2.0)
    if not math.isfinite(loss):
        result.add(
            "error",
            f"{NAME}: the first loss is {loss} - non-finite before any update "
            "(log of zero, division by zero, or inf in the inputs)",
            location=loc,
        )
    elif expected is not None:
        result.figures["expected_loss"] = expected
        ratio = max(loss / expected, expected / loss) if loss > 0 and expected > 0 else math.inf
        result.figures["ratio"] = ratio
        observed = f"initial loss {loss:.4g}, expected about {expected:.4g} for {task.describe()}"
        off = f"{ratio:.1f}x off" if math.isfinite(ratio) else "not positive"
        if ratio > float(session.opt(NAME, "fail-ratio")):
            result.add(
                "error",
                f"{NAME}: {observed} ({off}) - output layer initialised with large "
                "weights, logits scaled up, or a loss that is not averaged over the batch",
                location=loc,
                initial_loss=loss,
                expected=expected,
            )
        elif ratio > float(session.opt(NAME, "warn-ratio")):
            result.add(
                "warning",
                f"{NAME}: {observed} ({off}) - check the output layer's " "initialisation and the loss reduction",
                location=loc,
                initial_loss=loss,
                expected=expected,
            )
        result.summary = observed
    else:
        result.summary = f"initial loss {loss:.4g} ({task.describe()}, no expectation)"
    found = from_loss_fn and _double_activation(session, result)
    if run is not None:
        _double_activation_in_step(session, result, run, probe=not found)
    return result


# What each double activation looks like, with {where}: the loss it shows in.
_MESSAGES = {
    "model-softmax": "the model outputs probabilities (rows sum to 1) and {where} applies cross_entropy to them - "
    "double softmax: return logits, or use NLLLoss on log-probabilities",
    "softmax": "{where} equals cross_entropy(softmax(outputs)) - double softmax: cross_entropy applies "
    "log_softmax itself; pass the logits",
    "model-sigmoid": "the outputs are already in [0, 1] and {where} applies binary_cross_entropy_with_logits "
    "to them - double sigmoid: return logits, or use binary_cross_entropy on probabilities",
    "sigmoid": "{where} equals binary_cross_entropy_with_logits(sigmoid(outputs)) - double sigmoid: the loss "
    "applies the sigmoid itself; pass the logits",
}


def _double_activation(session: Session, result: CheckResult) -> bool:
    """Flag a loss that applies softmax/sigmoid to outputs that already went through one; True if it did."""
    import torch

    h = session.harness
    pred, loss = h.init_prediction, h.init_loss
    if pred is None or loss is None or not isinstance(h.targets, torch.Tensor):
        return False
    kind = _activation_twice(pred, h.targets, h.task, loss)
    if kind is None:
        return False
    result.add("error", f"{NAME}: " + _MESSAGES[kind].format(where="the loss"), location=h.spec.location)
    return True


def _double_activation_in_step(session: Session, result: CheckResult, run: Run, *, probe: bool) -> None:
    """The same probe on the user's train_step: its first loss against the model's outputs in that step."""
    import torch

    h = session.harness
    if run.error is not None:
        if not session.reported_step_failure:  # reported once, by the first check that sees it; the verdict stays
            summary = result.summary
            session.step_failed(result)
            result.summary = f"{summary}; {result.summary}"
        return
    if not probe or not run.losses or run.first_outputs is None or not isinstance(h.targets, torch.Tensor):
        return
    pred = h.prediction(run.first_outputs)
    if pred is None:
        return
    kind = _activation_twice(pred, h.targets, h.task, run.losses[0])
    if kind is not None:
        result.add(
            "error",
            f"{NAME}: " + _MESSAGES[kind].format(where="your train_step's loss"),
            location=session.location,
        )


def _activation_twice(pred: torch.Tensor, targets: torch.Tensor, task: Task, loss: float) -> str | None:
    """Which activation the loss applied twice (a key of _MESSAGES), or None; any doubt is None.

    A loss matches a reading within 2e-5 (relative: the same float32 arithmetic on the same outputs), and only
    when the readings are more than 1e-4 apart (near-uniform outputs make them all about log(C): no verdict).
    Targets below zero are left out, as ignore_index (-100, or -1 in GPT code) does; outputs of part of the batch
    (a step that trains on a slice) match nothing.
    """
    import torch
    import torch.nn.functional as F

    scale = max(1.0, abs(loss))

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 2e-5 * scale

    def apart(a: float, b: float) -> bool:
        return abs(a - b) > 1e-4 * scale

    try:
        p = pred.detach().float()
        if task.kind == "classification" and task.class_dim is not None:
            c = int(p.shape[task.class_dim]) if p.dim() > task.class_dim else 0
            if c < 2 or p.numel() != c * targets.numel():
                return None
            z = p.movedim(task.class_dim, -1).reshape(-1, c)
            t = targets.reshape(-1).long().to(z.device)
            keep = t >= 0
            if not bool(keep.any()):
                return None
            z, t = z[keep], t[keep]
            as_logits = float(F.cross_entropy(z, t))
            probabilities = bool(((z >= 0) & (z <= 1)).all()) and bool(
                torch.allclose(z.sum(-1), torch.ones((), device=z.device), atol=1e-4)
            )
            if probabilities:
                of_probabilities = float(F.nll_loss(z.clamp_min(1e-12).log(), t))
                if close(loss, as_logits) and apart(as_logits, of_probabilities):
                    return "model-softmax"
            of_softmax = float(F.cross_entropy(z.softmax(-1), t))
            if close(loss, of_softmax) and apart(of_softmax, as_logits):
                return "softmax"
        elif task.kind == "binary":
            if p.numel() != targets.numel():
                return None
            z = p.reshape(-1)
            t = targets.reshape(-1).float().to(z.device)
            as_logits = float(F.binary_cross_entropy_with_logits(z, t))
            if bool(((z >= 0) & (z <= 1)).all()):
                of_probabilities = float(F.binary_cross_entropy(z.clamp(1e-7, 1 - 1e-7), t))
                if close(loss, as_logits) and apart(as_logits, of_probabilities):
                    return "model-sigmoid"
            of_sigmoid = float(F.binary_cross_entropy_with_logits(z.sigmoid(), t))
            if close(loss, of_sigmoid) and apart(of_sigmoid, as_logits):
                return "sigmoid"
    except Exception:  # the kit's own probe: a shape or dtype it did not foresee is no finding
        return None
    return None


loss_at_init, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
