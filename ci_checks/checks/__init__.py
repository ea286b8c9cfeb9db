"""The training checks: one module per check, the registry, and `run_checks`, which runs them on one shared run.

A check is a module in this package with NAME, HELP, SETTINGS (its settings and their defaults), a
`needs(settings) -> RunNeeds | None` (what it needs from the shared training run; None when it does not train)
and `check(session) -> CheckResult`. Adding one is the module plus its line in REGISTRY.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from ci_checks.results import CheckResult, Report

if TYPE_CHECKING:
    from ci_checks.engine.session import RunNeeds
    from ci_checks.spec import TrainingSpec

# name -> module. Order matters: a step that raises is reported by the first check that trains.
REGISTRY: dict[str, str] = {
    "parameter-updates": "ci_checks.checks.parameter_updates",
    "loss-at-init": "ci_checks.checks.loss_at_init",
    "finite-values": "ci_checks.checks.finite_values",
    "loss-decreases": "ci_checks.checks.loss_decreases",
    "memorization": "ci_checks.checks.memorization",
    "batch-independence": "ci_checks.checks.batch_independence",
    "reproducibility": "ci_checks.checks.reproducibility",
    "checkpoint": "ci_checks.checks.checkpoint",
    "train-mode": "ci_checks.checks.train_mode",
}
CHECKS = tuple(REGISTRY)  # the built-in checks, in order; the code uses names(), which sees checks registered later


def names() -> tuple[str, ...]:
    """Every registered check, in order."""
    return tuple(REGISTRY)


def module(name: str) -> ModuleType:
    return importlib.import_module(REGISTRY[name])


def default_settings() -> dict[str, dict[str, Any]]:
    return {name: dict(module(name).SETTINGS) for name in names()}


def needs(name: str, settings: Mapping[str, Any]) -> RunNeeds | None:
    """What the check needs from the shared training run with these settings (None: it does not train)."""
    declared: Callable[[Mapping[str, Any]], RunNeeds | None] = module(name).needs
    return declared(settings)


def training_checks() -> frozenset[str]:
    """The checks that use the shared training run at their default settings."""
    defaults = default_settings()
    return frozenset(n for n in names() if needs(n, defaults[n]) is not None)


def run_checks(
    spec: TrainingSpec | str,
    checks: Sequence[str] | None = None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run checks on a spec (object or 'file.py:func' reference) and return the report."""
    from ci_checks.engine.harness import Harness
    from ci_checks.spec import load_spec, validate

    from ci_checks._errors import UserError
    from ci_checks.config import closest, coerce_setting
    from ci_checks.engine.session import Session

    registered = names()
    checks = registered if checks is None else tuple(checks)
    if isinstance(spec, str):
        ref = spec
        spec = load_spec(spec, check_names=registered, seed=seed)
    else:
        ref = getattr(spec, "__qualname__", type(spec).__name__)
        # An object skips load_spec's validation; without it frozen="emb.*" would be read as the patterns e, m, b, ., *
        spec = validate(spec, where=ref)
    for name in checks:
        if name not in REGISTRY:
            raise UserError(f"unknown check {name!r}; {closest(name, list(registered), 'checks')}")
    defaults = default_settings()
    merged = default_settings()
    for where, source in (("the spec's settings", spec.settings), ("settings", settings or {})):
        for check, values in source.items():
            check = check.replace("_", "-")
            if check not in merged:
                raise UserError(f"{where}: unknown check {check!r}; {closest(check, list(merged))}")
            for key, value in values.items():
                key = key.replace("_", "-")
                merged[check][key] = coerce_setting(check, key, value, defaults[check], where=where)
    import torch

    from ci_checks.engine.usercode import UserCodeError

    harness = Harness(spec, device=device, seed=seed)
    report = Report(
        command="train-check",
        subject={
            "spec": ref,
            "device": str(harness.device),
            "torch": torch.__version__,
            "seed": harness.seed,
            "settings": {k: v for k, v in merged.items() if k in checks},
        },
    )
    try:
        harness.preflight()
    except UserCodeError as e:
        # The model, loss or setup raised on the spec's own batch: a finding about that code, and no check can run.
        report.subject["task"] = "unknown"
        for i, name in enumerate(checks):
            result = CheckResult(name)
            if i == 0:
                result.add("error", f"{name}: {e.describe()}", location=e.location or spec.location)
                result.summary = f"{e.phase} raised"
            else:
                result.skipped = True
                result.summary = f"skipped: {e.phase} raised (reported by {checks[0]})"
            report.checks.append(result)
        return report
    report.subject["task"] = harness.task.describe()
    declared = {name: needs(name, merged[name]) for name in checks}
    training = {name: n for name, n in declared.items() if n is not None}
    session = Session(harness, merged, needs=training, progress=progress)
    if training:
        start = time.perf_counter()
        run = session.main_run()
        report.subject["training_seconds"] = round(time.perf_counter() - start, 4)
        report.subject["training_steps"] = len(run.losses)
    for name in checks:
        start = time.perf_counter()
        result = _run_one(name, session, report)
        result.duration_s = time.perf_counter() - start
        report.checks.append(result)
    report.subject["steps_taken"] = harness.steps_taken  # the shared run's and the checks' own (reproducibility...)
    return report


def _run_one(name: str, session: Any, report: Report) -> CheckResult:
    """One check; what escapes it is a finding (the user's code raised), a skip (a probe of the kit could not run
    on this model), or the kit's own bug (recorded, so the report is still written, and the exit code is 3)."""
    from ci_checks._errors import UserError
    from ci_checks.engine.usercode import UserCodeError, first_line, ran_the_model, user_location

    try:
        result: CheckResult = module(name).check(session)
        return result
    except (UserError, KeyboardInterrupt):
        raise
    except UserCodeError as e:
        result = CheckResult(name)
        result.add("error", f"{name}: {e.describe()}", location=e.location or session.location)
        result.summary = f"{e.phase} raised"
        return result
    except Exception as e:
        result = CheckResult(name)
        if not ran_the_model(e):
            import traceback

            where = traceback.extract_tb(e.__traceback__)[-1]
            report.subject.setdefault("internal_errors", []).append(
                f"{name}: {type(e).__name__}: {first_line(e)} ({os.path.basename(where.filename)}:{where.lineno})"
            )
            result.add(
                "error",
                f"{name}: internal error of ci-checks: {type(e).__name__}: {first_line(e)} - please report it "
                "(rerun with --debug for the traceback)",
            )
            result.summary = "internal error"
            return result
        loc = user_location(e.__traceback__)
        result.skipped = True
        result.summary = (
            f"skipped: the check's probe could not run on this model: {type(e).__name__}: {first_line(e)}"
            + (f" ({loc})" if loc else "")
        )
        return result


class StandaloneCheck(Protocol):
    def __call__(
        self, spec: TrainingSpec | str, *, settings: Mapping[str, Any] | None = None, device: str | None = None
    ) -> CheckResult: ...


class CheckMain(Protocol):
    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def standalone(name: str) -> tuple[StandaloneCheck, CheckMain]:
    """A check module's public pair: a function that runs the check alone on a spec, and its `main(argv)`."""

    def run_one(
        spec: TrainingSpec | str, *, settings: Mapping[str, Any] | None = None, device: str | None = None
    ) -> CheckResult:
        return run_checks(spec, [name], settings={name: settings or {}}, device=device).checks[0]

    def main(argv: Sequence[str] | None = None) -> int:
        return check_main(name, argv)

    run_one.__name__ = run_one.__qualname__ = name.replace("-", "_")
    run_one.__doc__ = f"Run the {name} check alone on a spec (a TrainingSpec or 'file.py:func')."
    return run_one, main


def check_main(name: str, argv: Sequence[str] | None) -> int:
    """Entry point of one check's own module: the umbrella CLI with that subcommand."""
    from ci_checks.main import main

    return main([name, *(sys.argv[1:] if argv is None else argv)])
