"""loss-at-init: the first loss is plausible for the task (about log(num_classes) for a fresh classifier)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ci_checks.results import CheckResult
from ci_checks.checks import standalone

if TYPE_CHECKING:
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
    loss = h.init_loss
    assert loss is not None
    task = h.task
    result.figures["initial_loss"] = loss
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
    _double_activation(session, result)
    return result


def _double_activation(session: Session, result: CheckResult) -> None:
    """Flag a loss that applies softmax/sigmoid to outputs that already went through one."""
    import torch
    import torch.nn.functional as F

    h = session.harness
    pred, loss, task = h.init_prediction, h.init_loss, h.task
    if pred is None or loss is None or not isinstance(h.targets, torch.Tensor):
        return
    close = lambda a, b: abs(a - b) <= 1e-4 * max(1.0, abs(b))  # noqa: E731
    p = pred.float()
    try:
        if task.kind == "classification" and task.class_dim is not None:
            z = p.movedim(task.class_dim, -1).reshape(-1, p.shape[task.class_dim])
            t = h.targets.reshape(-1).long()
            as_logits = float(F.cross_entropy(z, t, ignore_index=-100))
            of_softmax = float(F.cross_entropy(z.softmax(-1), t, ignore_index=-100))
            probabilities = bool(((z >= 0) & (z <= 1)).all()) and bool(
                torch.allclose(z.sum(-1), torch.ones(1), atol=1e-4)
            )
            if probabilities and close(loss, as_logits):
                result.add(
                    "error",
                    f"{NAME}: the model outputs probabilities (rows sum to 1) and the loss applies "
                    "cross_entropy to them - double softmax: return logits, or use NLLLoss on log-probabilities",
                    location=h.spec.location,
                )
            elif close(loss, of_softmax) and not close(loss, as_logits):
                result.add(
                    "error",
                    f"{NAME}: the loss equals cross_entropy(softmax(outputs)) - double softmax: "
                    "cross_entropy applies log_softmax itself; pass the logits",
                    location=h.spec.location,
                )
        elif task.kind == "binary":
            z = p.reshape(-1)
            t = h.targets.reshape(-1).float()
            if bool(((z >= 0) & (z <= 1)).all()) and close(loss, float(F.binary_cross_entropy_with_logits(z, t))):
                result.add(
                    "error",
                    f"{NAME}: the outputs are already in [0, 1] and the loss applies "
                    "binary_cross_entropy_with_logits to them - double sigmoid",
                    location=h.spec.location,
                )
    except RuntimeError:
        return


loss_at_init, main = standalone(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
