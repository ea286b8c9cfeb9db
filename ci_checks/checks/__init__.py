"""The training checks: one module per check, a registry, and the session that shares one training run."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from ci_checks._report import CheckResult, Report

if TYPE_CHECKING:
    from ci_checks._harness import Harness, Run
    from ci_checks.spec import TrainingSpec

# Order matters: a step that raises is reported by the first check that trains.
CHECKS = (
    "parameter-updates",
    "loss-at-init",
    "finite-values",
    "loss-decreases",
    "memorization",
    "batch-independence",
    "reproducibility",
    "checkpoint",
    "train-mode",
)

TRAINING_CHECKS = frozenset(CHECKS) - {"loss-at-init", "batch-independence"}


def module(name: str) -> ModuleType:
    return importlib.import_module(f"ci_checks.checks.{name.replace('-', '_')}")


def default_settings() -> dict[str, dict[str, Any]]:
    return {name: dict(module(name).SETTINGS) for name in CHECKS}


@dataclass
class Session:
    """One spec under test: the harness, merged settings, and the shared instrumented run."""

    harness: Harness
    settings: dict[str, dict[str, Any]]
    selected: Sequence[str] = CHECKS
    progress: Callable[[str], None] | None = None
    reported_step_failure: bool = False
    reproducible: bool | None = None  # set by the reproducibility check when it ran
    _run: Run | None = field(default=None, repr=False)

    def opt(self, check: str, key: str) -> Any:
        return self.settings[check][key]

    @property
    def checkpoint_steps(self) -> tuple[int, int]:
        return int(self.opt("checkpoint", "steps-before")), int(self.opt("checkpoint", "steps-after"))

    @property
    def location(self) -> Any:
        """Where findings about training point: the user's step if given, else the spec function."""
        return self.harness.step_location or self.harness.spec.location

    def step_failed(self, result: CheckResult) -> bool:
        """Report a training step that raised once; later checks that needed it are skipped."""
        run = self.main_run()
        if run.error is None:
            return False
        if self.reported_step_failure:
            result.skipped = True
            result.summary = "skipped: the training step raised (reported above)"
        else:
            self.reported_step_failure = True
            result.add("error", f"{result.check}: {run.error.describe()}", location=self.location)
            result.summary = "the training step raised"
        return True

    def main_run(self) -> Run:
        """Train once, long enough for every selected check, stopping when the batch is memorized."""
        if self._run is not None:
            return self._run
        mem = self.settings["memorization"]
        repro_steps = int(self.opt("reproducibility", "steps"))
        before, after = self.checkpoint_steps
        min_steps = max(int(self.opt("loss-decreases", "steps")), repro_steps, before + after)
        criterion = memorization_criterion(self.harness, mem)
        last = [0.0]

        def progress(step: int, loss: float, fit: float | None) -> None:
            now = time.perf_counter()
            if self.progress is not None and now - last[0] > 1.0:
                last[0] = now
                shown = "" if fit is None else f", fit {fit:.3f}"
                self.progress(f"training step {step}/{mem['max-steps']}: loss {loss:.4g}{shown}")

        self._run = self.harness.run(
            max_steps=max(int(mem["max-steps"]), min_steps),
            min_steps=min_steps,
            max_seconds=float(mem["max-seconds"]),
            done=criterion,
            checkpoint_step=before if "checkpoint" in self.selected else None,
            keep_states=(repro_steps, before + after),
            progress=progress,
        )
        return self._run


def memorization_criterion(harness: Harness, mem: Mapping[str, Any]) -> Callable[[float, float | None], bool]:
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


def run_checks(
    spec: TrainingSpec | str,
    checks: Sequence[str] = CHECKS,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run checks on a spec (object or 'file.py:func' reference) and return the report."""
    from ci_checks._harness import Harness
    from ci_checks.spec import load_spec, validate

    if isinstance(spec, str):
        ref = spec
        spec = load_spec(spec, check_names=CHECKS)
    else:
        ref = getattr(spec, "__qualname__", type(spec).__name__)
        # An object skips load_spec's validation; without it frozen="emb.*" would be read as the patterns e, m, b, ., *
        spec = validate(spec, where=ref)
    from ci_checks._config import _closest, coerce_setting
    from ci_checks._errors import UserError

    for name in checks:
        if name not in CHECKS:
            raise UserError(f"unknown check {name!r}; {_closest(name, list(CHECKS), 'checks')}")
    merged = default_settings()
    for where, source in (("the spec's settings", spec.settings), ("settings", settings or {})):
        for check, values in source.items():
            check = check.replace("_", "-")
            if check not in merged:
                raise UserError(f"{where}: unknown check {check!r}; {_closest(check, list(merged))}")
            for key, value in values.items():
                key = key.replace("_", "-")
                merged[check][key] = coerce_setting(check, key, value, default_settings()[check], where=where)
    harness = Harness(spec, device=device, seed=seed)
    harness.preflight()
    session = Session(harness, merged, selected=tuple(checks), progress=progress)
    import torch

    report = Report(
        command="train-check",
        subject={
            "spec": ref,
            "device": str(harness.device),
            "torch": torch.__version__,
            "task": harness.task.describe(),
            "seed": harness.seed,
            "settings": {k: v for k, v in merged.items() if k in checks},
        },
    )
    if set(checks) & TRAINING_CHECKS:
        start = time.perf_counter()
        run = session.main_run()
        report.subject["training_seconds"] = round(time.perf_counter() - start, 4)
        report.subject["training_steps"] = len(run.losses)
    for name in checks:
        start = time.perf_counter()
        result: CheckResult = module(name).check(session)
        result.duration_s = time.perf_counter() - start
        report.checks.append(result)
    return report


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
