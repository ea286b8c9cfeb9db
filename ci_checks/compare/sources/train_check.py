"""Steps-to-memorize from the train-check results of the base and of the head (--base-results, --head-results)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ci_checks._errors import UserError
from ci_checks.checks.memorization import NAME as MEMORIZATION
from ci_checks.compare.sources.source import Context, Readings
from ci_checks.compare.trees import Tree

if TYPE_CHECKING:
    from ci_checks.results import CheckResult


class TrainCheckResults:
    name = "train-check"

    def read(self, head: Tree, base: Tree, ctx: Context) -> Readings:
        out = Readings()
        if ctx.base_results is not None and ctx.head_results is not None:
            ratio_limit = float(ctx.settings["steps-ratio"])
            result = training(ctx.base_results, ctx.head_results, ratio_limit=ratio_limit, base_name=ctx.base_name)
            out.checks.append(result)
        return out


def _steps(path: str) -> tuple[int | None, int | None]:
    """Steps to memorize (None: did not) and steps run, from the memorization check of train-check results."""
    from ci_checks.results import load_report

    report = load_report(path)
    for check in report.checks:
        if check.check == MEMORIZATION:
            n, run = check.figures.get("steps_to_memorize"), check.figures.get("steps_run")
            steps = int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else None
            return steps, (int(run) if isinstance(run, (int, float)) else None)
    raise UserError(
        f"{path}: no memorization check in these results; write them with "
        f"ci-checks train-check --format json --output {path}"
    )


def training(base_path: str, head_path: str, *, ratio_limit: float, base_name: str) -> CheckResult:
    """One result comparing steps-to-memorize; a warning when the head needs more than ratio_limit times as many."""
    from ci_checks.results import CheckResult, Kind

    (base, base_run), (head, head_run) = _steps(base_path), _steps(head_path)
    result = CheckResult("training steps-to-memorize")
    ratio = head / base if base and head is not None else None
    result.figures = {"kind": Kind.TRAINING.value, "base": base, "head": head, "ratio": ratio}
    if head is not None and base is not None:
        result.summary = f"{head} vs {base} steps on {base_name} ({ratio:.2g}x)" if ratio else f"{head} vs {base} steps"
        if ratio is not None and ratio > ratio_limit:
            result.add(
                "warning",
                f"memorization: {ratio:.1f}x more steps to memorize than {base_name} ({head} vs {base}); "
                "the change made one-batch learning slower: check the learning rate, initialisation and loss, "
                f"or raise steps-ratio (now {ratio_limit:g}) under [tool.ci-checks.compare]",
                location=None,
                ratio=ratio,
            )
    elif head is None and base is not None:
        result.summary = f"did not memorize (main: {base} steps)"
        result.add(
            "warning",
            f"memorization: did not memorize one batch in {head_run} steps; {base_name} memorized "
            f"it in {base}; see the train-check results for the likely cause",
        )
    elif head is not None:
        result.summary = f"{head} steps ({base_name} did not memorize in {base_run})"
    else:
        result.summary = f"neither side memorized one batch ({base_name}: {base_run} steps, head: {head_run})"
    return result
