"""Run ci-checks train-check on known-buggy and known-correct training specs and print the measured figures.

Each spec in specs/ is run three ways, one at a time (never in parallel: the figures are for a 2-core runner):

1. as CI runs it: a fresh process ``ci-checks train-check --threads N --quiet --format json --output F``,
   timed from process start to exit;
2. in this process, warm (torch, torch._dynamo and the checks already imported): ``run_checks(spec_ref)``;
3. the baseline every engineer writes first: overfit one batch with the spec's own step (or the plain
   zero_grad/forward/backward/step) within the same step and time budget as the memorization check, and call
   the spec broken if the loss never falls below 10% of its first value (or the step raises, or goes non-finite).

Usage: python benchmarks/training_bugs/run.py [--only PATTERN] [--json FILE] [--threads N]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs"
BASELINE_FRACTION = 0.10
FIXED_COST_REPEATS = 2
CLI_TIMEOUT_S = 180


@dataclass
class Outcome:
    """What one spec gave under ci-checks (fresh process and warm) and under the baseline."""

    spec: str
    expected: str  # "bug" or "ok"
    intended: list[str]  # checks the spec's docstring says should catch it
    cli_status: str = ""  # pass | warn | fail | error (exit 2/3 or no results)
    cli_exit: int | None = None
    cli_seconds: float = math.nan
    failing: list[str] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    cli_error: str = ""
    inproc_status: str = ""
    inproc_seconds: float = math.nan
    inproc_failing: list[str] = field(default_factory=list)
    training_steps: int | None = None
    stop_reason: str = ""  # why the shared training run stopped: memorized | step budget | time budget | error
    inproc_findings: list[str] = field(default_factory=list)
    inproc_stop_reason: str = ""
    baseline_broken: bool | None = None
    baseline_reason: str = ""
    baseline_steps: int = 0
    baseline_seconds: float = math.nan

    @property
    def flagged(self) -> bool:
        return self.cli_status == "fail"

    @property
    def correct(self) -> bool:
        return self.flagged == (self.expected == "bug")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="PATTERN", help="run only specs whose name matches (glob, or substring)")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE (default: none)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for every run (default: 1, as train-check)"
    )
    args = parser.parse_args(argv)

    specs = _discover(args.only)
    if not specs:
        print(f"no spec in {SPECS} matches {args.only!r}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    load_before = os.getloadavg()
    from ci_checks.checks import CHECKS

    outcomes = [Outcome(p.stem, "bug" if p.stem.startswith("bug_") else "ok", _intended(p, CHECKS)) for p in specs]

    # Fresh processes first, before this process imports torch, so its idle thread pool cannot compete.
    fixed = _fixed_cost()
    with tempfile.TemporaryDirectory(prefix="ci-checks-bench-") as tmp:
        for path, outcome in zip(specs, outcomes):
            _run_cli(path, outcome, tmp, args.threads)
            print(f"  cli  {outcome.spec:34} {outcome.cli_status:5} {outcome.cli_seconds:6.2f}s", file=sys.stderr)

    import torch

    torch.set_num_threads(args.threads)
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # warm: the first optimizer imports torch._dynamo
    for name in CHECKS:
        __import__(f"ci_checks.checks.{name.replace('-', '_')}")
    for path, outcome in zip(specs, outcomes):
        _run_inprocess(path, outcome)
        _run_baseline(path, outcome)
        print(
            f"  warm {outcome.spec:34} {outcome.inproc_status:5} {outcome.inproc_seconds:6.2f}s  "
            f"baseline {'broken' if outcome.baseline_broken else 'ok':6} {outcome.baseline_seconds:6.2f}s",
            file=sys.stderr,
        )

    total = time.perf_counter() - start
    summary = _summary(outcomes, fixed, total, load_before, os.getloadavg(), args.threads)
    _print_table(outcomes)
    _print_summary(summary)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            specs = [_jsonable({**asdict(o), "flagged": o.flagged, "correct": o.correct}) for o in outcomes]
            json.dump({"summary": _jsonable(summary), "specs": specs}, fh, indent=2)
            fh.write("\n")
    return 0


# ---------------------------------------------------------------- discovery


def _discover(pattern: str | None) -> list[Path]:
    paths = sorted(p for p in SPECS.glob("*.py") if p.stem.startswith(("bug_", "ok_")))
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        paths = [p for p in paths if fnmatch.fnmatch(p.stem, glob) or fnmatch.fnmatch(p.name, glob)]
    # Buggy specs first, then correct ones, each alphabetical: the table reads as two blocks.
    return sorted(paths, key=lambda p: (not p.stem.startswith("bug_"), p.stem))


def _intended(path: Path, checks: Sequence[str]) -> list[str]:
    """The checks named in the docstring's 'Should be caught by:' sentence."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    match = re.search(r"[Ss]hould be caught by:(.*?)(?:\.\s|\.$|$)", doc, re.S)
    if not match:
        return []
    text = match.group(1)
    return [c for c in checks if re.search(rf"\b{re.escape(c)}\b", text)]


# ---------------------------------------------------------------- the three ways to run a spec


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "ci-checks"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ci_checks"]


def _run_cli(path: Path, outcome: Outcome, tmp: str, threads: int) -> None:
    out = os.path.join(tmp, f"{outcome.spec}.json")
    cmd = [
        *_cli(),
        "train-check",
        "--spec",
        f"{path}:spec",
        "--threads",
        str(threads),
        "--quiet",
        "--format",
        "json",
        "--output",
        out,
    ]
    t0 = time.perf_counter()
    # Run from an empty directory so no pyproject.toml [tool.ci-checks] table changes the settings under test.
    try:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        outcome.cli_seconds = time.perf_counter() - t0
        outcome.cli_status, outcome.cli_error = "error", f"timed out after {CLI_TIMEOUT_S}s"
        return
    outcome.cli_seconds = time.perf_counter() - t0
    outcome.cli_exit = proc.returncode
    if proc.returncode not in (0, 1) or not os.path.exists(out):
        outcome.cli_status = "error"
        outcome.cli_error = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return
    with open(out, encoding="utf-8") as fh:
        data = json.load(fh)
    outcome.cli_status = data["status"]
    outcome.training_steps = data.get("subject", {}).get("training_steps")
    for check in data["checks"]:
        if check["check"] == "memorization":
            outcome.stop_reason = str(check["figures"].get("stop_reason", ""))
        if check["status"] == "fail":
            outcome.failing.append(check["check"])
        elif check["status"] == "warn":
            outcome.warning.append(check["check"])
        for f in check["findings"]:
            if f["severity"] in ("error", "warning"):
                outcome.findings.append(f"{f['severity']}: {f['message']}")


def _run_inprocess(path: Path, outcome: Outcome) -> None:
    from ci_checks._errors import UserError
    from ci_checks.checks import run_checks

    t0 = time.perf_counter()
    try:
        report = run_checks(f"{path}:spec")
    except UserError as e:
        outcome.inproc_seconds = time.perf_counter() - t0
        outcome.inproc_status = "error"
        outcome.cli_error = outcome.cli_error or str(e)
        return
    outcome.inproc_seconds = time.perf_counter() - t0
    outcome.inproc_status = report.status
    outcome.inproc_failing = [c.check for c in report.checks if c.status == "fail"]
    outcome.inproc_findings = [
        f"{f.severity}: {f.message}" for c in report.checks for f in c.findings if f.severity in ("error", "warning")
    ]
    outcome.inproc_stop_reason = next(
        (str(c.figures.get("stop_reason", "")) for c in report.checks if c.check == "memorization"), ""
    )


def _run_baseline(path: Path, outcome: Outcome) -> None:
    """Overfit one batch with the spec's step; broken unless the loss falls below 10% of its first value."""
    import torch

    from ci_checks.checks import CHECKS, default_settings
    from ci_checks.spec import load_spec

    spec = load_spec(f"{path}:spec", check_names=CHECKS)
    mem = {**default_settings()["memorization"], **spec.settings.get("memorization", {})}
    max_steps, max_seconds = int(mem["max-steps"]), float(mem["max-seconds"])
    t0 = time.perf_counter()
    torch.manual_seed(spec.seed)
    if spec.setup is not None:
        model, optimizer = spec.setup()
    else:
        model = spec.model_factory()
        optimizer = spec.optimizer_factory(model.parameters())
    inputs, targets = spec.batch

    def step() -> float:
        if spec.train_step is not None:
            loss = spec.train_step(model, spec.batch, spec.loss_fn, optimizer)
        else:
            model.train()
            optimizer.zero_grad()
            out = spec.forward(model, inputs) if spec.forward else _call(model, inputs)
            loss = spec.loss_fn(out, targets)
            loss.backward()
            optimizer.step()
        return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)

    first = None
    broken, reason = True, f"loss stayed above {BASELINE_FRACTION:.0%} of its first value in {max_steps} steps"
    steps = 0
    try:
        for steps in range(1, max_steps + 1):
            loss = step()
            if first is None:
                first = loss
            if not math.isfinite(loss):
                reason = f"non-finite loss at step {steps}"
                break
            if loss < BASELINE_FRACTION * first:
                broken, reason = False, f"loss {first:.3g} -> {loss:.3g} at step {steps}"
                break
            if time.perf_counter() - t0 > max_seconds:
                reason = f"loss {first:.3g} -> {loss:.3g}, time budget {max_seconds:.0f}s hit at step {steps}"
                break
    except Exception as e:  # noqa: BLE001 - a step that raises is the baseline's 'broken'
        reason = f"the step raised {type(e).__name__} at step {steps}"
    outcome.baseline_seconds = time.perf_counter() - t0
    outcome.baseline_broken, outcome.baseline_reason, outcome.baseline_steps = broken, reason, steps


def _call(model: Any, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _fixed_cost() -> dict[str, float]:
    """Seconds a fresh python process needs to import torch, and to import it and build a first optimizer."""
    probes = {
        "import_torch": "import torch",
        "import_torch_first_optimizer": "import torch; torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)",
        "ci_checks_help": None,  # `ci-checks --help` must not import torch
    }
    out: dict[str, float] = {}
    for name, code in probes.items():
        cmd = [*_cli(), "--help"] if code is None else [sys.executable, "-c", code]
        times = []
        for _ in range(FIXED_COST_REPEATS):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


# ---------------------------------------------------------------- reporting


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {hits / total:.0%}" if total else "n/a"


def _summary(
    outcomes: list[Outcome],
    fixed: dict[str, float],
    total: float,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    threads: int,
) -> dict[str, Any]:
    bugs = [o for o in outcomes if o.expected == "bug"]
    oks = [o for o in outcomes if o.expected == "ok"]
    cli = [o.cli_seconds for o in outcomes]
    warm = [o.inproc_seconds for o in outcomes]
    base = [o.baseline_seconds for o in outcomes]
    by_intended = [o for o in bugs if o.intended and set(o.intended) & set(o.failing)]
    return {
        "specs": len(outcomes),
        "buggy": len(bugs),
        "correct": len(oks),
        "threads": threads,
        "ci_checks": {
            "detected": sum(o.flagged for o in bugs),
            "detected_by_intended_check": len(by_intended),
            "false_alarms": sum(o.flagged for o in oks),
            "warnings_on_correct": sum(o.cli_status == "warn" for o in oks),
            "fresh_process_seconds": {"median": statistics.median(cli), "max": max(cli), "sum": sum(cli)},
            "in_process_seconds": {"median": statistics.median(warm), "max": max(warm), "sum": sum(warm)},
            "fresh_vs_warm_disagreements": [
                o.spec for o in outcomes if (o.cli_status == "fail") != (o.inproc_status == "fail")
            ],
        },
        "baseline": {
            "rule": f"broken unless the loss falls below {BASELINE_FRACTION:.0%} of its first value within the "
            "memorization step/time budget (or the step raises, or the loss goes non-finite)",
            "detected": sum(bool(o.baseline_broken) for o in bugs),
            "false_alarms": sum(bool(o.baseline_broken) for o in oks),
            "in_process_seconds": {"median": statistics.median(base), "max": max(base), "sum": sum(base)},
        },
        "fixed_process_cost_seconds": fixed,
        "code": _code_state(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "total_seconds": total,
    }


def _print_table(outcomes: list[Outcome]) -> None:
    head = (
        f"{'spec':34} {'expect':6} {'verdict':7} {'':11} {'fresh s':>7} {'warm s':>6} {'steps':>5} {'stop':5}  "
        f"{'baseline':8} {'b.steps':>7} {'b. s':>5}  failing checks"
    )
    print(head)
    print("-" * (len(head) + 40))
    for o in outcomes:
        mark = "" if o.correct else ("MISSED" if o.expected == "bug" else "FALSE ALARM")
        if o.expected == "bug" and o.flagged and o.intended and not set(o.intended) & set(o.failing):
            mark = "(other chk)"
        failing = ", ".join(o.failing) + (f" [warn: {', '.join(o.warning)}]" if o.warning else "")
        if o.cli_status == "error":
            failing = o.cli_error
        if (o.cli_status == "fail") != (o.inproc_status == "fail"):
            failing += f" (warm run: {o.inproc_status}: {', '.join(o.inproc_failing)})"
        baseline = "broken" if o.baseline_broken else "ok"
        b_mark = "" if bool(o.baseline_broken) == (o.expected == "bug") else "*"
        steps = "" if o.training_steps is None else str(o.training_steps)
        stop = {"memorized": "mem", "step budget": "steps", "time budget": "TIME", "error": "error"}.get(
            o.stop_reason, ""
        )
        print(
            f"{o.spec:34} {o.expected:6} {o.cli_status:7} {mark:11} {o.cli_seconds:7.2f} {o.inproc_seconds:6.2f} "
            f"{steps:>5} {stop:5}  {baseline + b_mark:8} {o.baseline_steps:7d} {o.baseline_seconds:5.2f}  {failing}"
        )
    print(
        "(MISSED: a buggy spec passed; FALSE ALARM: a correct spec failed; (other chk): caught, but not by a check "
        "its docstring names; steps/stop: the fresh process's shared training run and why it stopped (mem: "
        "memorized, steps: step budget, TIME: the memorization.max-seconds wall-clock budget); baseline *: the "
        "baseline got it wrong)"
    )
    print()
    for o in outcomes:
        disagree = (o.cli_status == "fail") != (o.inproc_status == "fail")
        other = o.expected == "bug" and o.flagged and o.intended and not set(o.intended) & set(o.failing)
        if o.correct and not other and not disagree:
            continue
        wanted = f"should be caught by {', '.join(o.intended) or '-'}" if o.expected == "bug" else "correct code"
        print(f"{o.spec}: {wanted}; fresh process said {o.cli_status} (training stopped: {o.stop_reason or '-'})")
        for f in o.findings:
            print(f"    {f}")
        if not o.findings and o.cli_error:
            print(f"    {o.cli_error}")
        if disagree:
            print(f"  warm process said {o.inproc_status} (training stopped: {o.inproc_stop_reason or '-'})")
            for f in o.inproc_findings:
                print(f"    {f}")
    print()
    print("baseline reasons:")
    for o in outcomes:
        print(f"    {o.spec:34} {'broken' if o.baseline_broken else 'ok':6} {o.baseline_reason}")
    print()


def _print_summary(s: dict[str, Any]) -> None:
    c, b = s["ci_checks"], s["baseline"]
    fixed = s["fixed_process_cost_seconds"]
    print(
        f"specs: {s['specs']} ({s['buggy']} buggy, {s['correct']} correct), torch threads {s['threads']}, "
        "one run at a time"
    )
    print(f"{'':34} {'ci-checks train-check':>24} {'overfit-one-batch baseline':>28}")
    detected, b_detected = _rate(c["detected"], s["buggy"]), _rate(b["detected"], s["buggy"])
    print(f"{'detection rate (buggy specs)':34} {detected:>24} {b_detected:>28}")
    print(f"{'  ... by the intended check':34} {_rate(c['detected_by_intended_check'], s['buggy']):>24} {'':>28}")
    print(
        f"{'false-alarm rate (correct specs)':34} {_rate(c['false_alarms'], s['correct']):>24} "
        f"{_rate(b['false_alarms'], s['correct']):>28}"
    )
    print(f"{'warnings on correct specs':34} {c['warnings_on_correct']:>24} {'':>28}")
    fp, ip, bp = c["fresh_process_seconds"], c["in_process_seconds"], b["in_process_seconds"]
    print(f"{'seconds/spec, fresh process':34} {'median %.2f, max %.2f' % (fp['median'], fp['max']):>24} {'':>28}")
    print(
        f"{'seconds/spec, warm process':34} {'median %.2f, max %.2f' % (ip['median'], ip['max']):>24} "
        f"{'median %.2f, max %.2f' % (bp['median'], bp['max']):>28}"
    )
    totals = f"{fp['sum']:.1f} fresh, {ip['sum']:.1f} warm"
    print(f"{'seconds, all specs':34} {totals:>24} {'%.1f warm' % bp['sum']:>28}")
    print(f"baseline rule: {b['rule']}")
    print(
        f"fixed cost of a fresh process (median of {FIXED_COST_REPEATS}): import torch {fixed['import_torch']:.2f}s, "
        f"import torch + first optimizer {fixed['import_torch_first_optimizer']:.2f}s, "
        f"ci-checks --help {fixed['ci_checks_help']:.2f}s"
    )
    if c["fresh_vs_warm_disagreements"]:
        print(f"fresh-process and warm verdicts disagree on: {', '.join(c['fresh_vs_warm_disagreements'])}")
    print(f"ci_checks code: {s['code']}")
    lb, la = s["load_average_before"], s["load_average_after"]
    print(
        f"load average before {lb[0]:.2f}, after {la[0]:.2f} (timings are noisy if other work shared the cores); "
        f"benchmark wall time {s['total_seconds']:.0f}s"
    )


def _code_state() -> str:
    """The commit the measured ci_checks comes from, and whether its working tree differs from it."""
    root = HERE.parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "ci_checks"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (" + uncommitted changes in ci_checks/" if dirty else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
