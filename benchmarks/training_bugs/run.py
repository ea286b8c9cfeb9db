"""Run ci-checks train-check on known-buggy and known-correct training specs and print the measured figures.

Each spec in specs/ is run these ways, one at a time (never in parallel: the figures are for a 2-core runner):

1. as CI runs it: a fresh process ``ci-checks train-check --threads N --quiet --format json --output F``,
   timed from process start to exit, ``--repeats`` times (the first run gives the verdict; the others must agree);
2. a bare script in a fresh process, as often: imports torch, builds the spec through ci_checks.spec.load_spec and
   trains as many steps as train-check took in all (its report's subject.steps_taken: the shared run's and the
   reproducibility and checkpoint runs'; equal work) with the spec's own
   step and nothing else: what the checks cost over training alone;
3. in this process, warm (torch, torch._dynamo and the checks already imported): ``run_checks(spec_ref)``;
4. the baseline every engineer writes first: overfit one batch with the spec's own step (or the plain
   zero_grad/forward/backward/step) within the same step and time budget as the memorization check, and call
   the spec broken if the loss never falls below 10% of its first value (or the step raises, or goes non-finite).

With ``--load N`` the benchmark runs a second time (1, 3 and 4, once each) while N busy processes load the CPU, and
reports every spec whose verdict (pass/warn/fail and the set of failing checks) changed: verdicts must never
depend on the machine's speed.

A spec's docstring says what it is: "Should be caught by: <checks>." names the checks meant to catch a bug_ spec.

Usage: python benchmarks/training_bugs/run.py [--only PATTERN ...] [--json FILE] [--threads N] [--repeats K]
       [--load N]
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs"
BASELINE_FRACTION = 0.10
FIXED_COST_REPEATS = 2
CLI_TIMEOUT_S = 180
BARE_TIMEOUT_S = 180
# Why the shared training run stopped, as the table's 'stop' column shows it.
STOP_REASONS = {
    "memorized": "mem",
    "step budget": "steps",
    "time budget": "TIME",
    "error": "error",
    "no parameter changes": "noupd",
    "non-finite loss": "nan",
    "stalled": "stall",
}


@dataclass
class CliRun:
    """One fresh ``ci-checks train-check`` process."""

    status: str = ""  # pass | warn | fail | error (exit 2/3 or no results)
    exit: int | None = None
    seconds: float = math.nan
    failing: list[str] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    error: str = ""
    training_steps: int | None = None
    steps_taken: int | None = None  # every training step of the run (shared run, reproducibility, checkpoint)
    stop_reason: str = ""


@dataclass
class Outcome:
    """What one spec gave under ci-checks (fresh process and warm), the bare script and the baseline."""

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
    cli_repeat_seconds: list[float] = field(default_factory=list)  # every fresh run, the first included
    cli_repeat_verdicts: list[str] = field(default_factory=list)
    cli_repeat_exits: list[int | None] = field(default_factory=list)
    bare_seconds: list[float] = field(default_factory=list)  # the bare script, one per repeat
    bare_steps: int | None = None
    bare_error: str = ""
    inproc_status: str = ""
    inproc_seconds: float = math.nan
    inproc_failing: list[str] = field(default_factory=list)
    training_steps: int | None = None
    steps_taken: int | None = None  # every training step of the run (shared run, reproducibility, checkpoint)
    stop_reason: str = ""  # why the shared training run stopped: memorized | step budget | time budget | error
    inproc_findings: list[str] = field(default_factory=list)
    inproc_stop_reason: str = ""
    inproc_error: str = ""
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

    @property
    def verdict(self) -> str:
        """The fresh process's verdict: what --load and --repeats compare."""
        return _verdict(self.cli_status, self.failing, self.cli_exit)

    @property
    def warm_verdict(self) -> str:
        return _verdict(self.inproc_status, self.inproc_failing, None)

    @property
    def baseline_verdict(self) -> str:
        return "error" if self.baseline_broken is None else ("broken" if self.baseline_broken else "ok")

    @property
    def cli_median(self) -> float:
        return _median(self.cli_repeat_seconds)

    @property
    def bare_median(self) -> float:
        return _median(self.bare_seconds)

    @property
    def ratio(self) -> float:
        """Fresh-process train-check time over the bare script's, medians of the repeats."""
        return self.cli_median / self.bare_median if self.bare_median > 0 else math.nan


def _verdict(status: str, failing: Sequence[str], exit_code: int | None) -> str:
    if status == "error":
        return f"error (exit {exit_code})" if exit_code is not None else "error"
    return status + (f" [{', '.join(sorted(failing))}]" if failing else "")


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        nargs="+",
        help="run only specs whose name matches one of the patterns (glob, or substring; comma-separated or "
        "several) (default: all)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE (default: none)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for every run (default: 1, as train-check)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        metavar="K",
        help="fresh-process runs of train-check and of the bare script per spec, timed by their median " "(default: 3)",
    )
    parser.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="N",
        help="run the benchmark a second time while N busy processes load the CPU and compare the verdicts "
        "(default: 0, no second run)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.load < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1, --load at least 0")

    specs = _discover(args.only)
    if not specs:
        print(f"no spec in {SPECS} matches {args.only!r}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    load_before = os.getloadavg()
    code_before = _code_fingerprint()
    from ci_checks.checks import CHECKS

    outcomes = [Outcome(p.stem, "bug" if p.stem.startswith("bug_") else "ok", _intended(p, CHECKS)) for p in specs]
    loaded = [Outcome(o.spec, o.expected, o.intended) for o in outcomes] if args.load else []
    loaded_load: list[float] = []

    # Fresh processes first, before this process imports torch, so its idle thread pool cannot compete.
    fixed = _fixed_cost()
    with tempfile.TemporaryDirectory(prefix="ci-checks-bench-") as tmp:
        bare = os.path.join(tmp, "bare_training.py")
        with open(bare, "w", encoding="utf-8") as fh:
            fh.write(BARE_SCRIPT)
        for path, outcome in zip(specs, outcomes):
            # train-check and the bare script take turns, so drift in the machine's speed hits both alike.
            for repeat in range(args.repeats):
                run = _run_cli(path, tmp, args.threads)
                if repeat == 0:
                    _record_cli(outcome, run)
                outcome.cli_repeat_seconds.append(run.seconds)
                outcome.cli_repeat_verdicts.append(_verdict(run.status, run.failing, run.exit))
                outcome.cli_repeat_exits.append(run.exit)
                if outcome.training_steps is not None:
                    _run_bare(path, outcome, bare, tmp, args.threads)
            print(
                f"  cli  {outcome.spec:38} {outcome.cli_status:5} {outcome.cli_median:6.2f}s  "
                f"bare {outcome.bare_median:6.2f}s ({outcome.steps_taken} steps)",
                file=sys.stderr,
            )
        if loaded:
            with _cpu_load(args.load):
                for path, lo in zip(specs, loaded):
                    _record_cli(lo, _run_cli(path, tmp, args.threads))
                    print(f"  cli  {lo.spec:38} {lo.cli_status:5} {lo.cli_seconds:6.2f}s  (loaded)", file=sys.stderr)
                loaded_load.append(os.getloadavg()[0])

    import torch

    torch.set_num_threads(args.threads)
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # warm: the first optimizer imports torch._dynamo
    for name in CHECKS:
        __import__(f"ci_checks.checks.{name.replace('-', '_')}")
    for path, outcome in zip(specs, outcomes):
        _run_inprocess(path, outcome)
        _run_baseline(path, outcome)
        print(
            f"  warm {outcome.spec:38} {outcome.inproc_status:5} {outcome.inproc_seconds:6.2f}s  "
            f"baseline {'broken' if outcome.baseline_broken else 'ok':6} {outcome.baseline_seconds:6.2f}s",
            file=sys.stderr,
        )
    if loaded:
        with _cpu_load(args.load):
            for path, lo in zip(specs, loaded):
                _run_inprocess(path, lo)
                _run_baseline(path, lo)
                print(f"  warm {lo.spec:38} {lo.inproc_status:5} {lo.inproc_seconds:6.2f}s  (loaded)", file=sys.stderr)
            loaded_load.append(os.getloadavg()[0])

    total = time.perf_counter() - start
    summary = _summary(outcomes, fixed, total, load_before, os.getloadavg(), args)
    summary["code_changed_during_run"] = _code_fingerprint() != code_before
    if loaded:
        summary["load"] = _load_summary(outcomes, loaded, args.load, loaded_load)
    _print_table(outcomes)
    _print_timing(outcomes, args.repeats)
    if loaded:
        _print_load(outcomes, loaded, args.load)
    _print_summary(summary)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            data: dict[str, Any] = {"summary": _jsonable(summary), "specs": [_as_json(o) for o in outcomes]}
            if loaded:
                data["loaded"] = [_as_json(o) for o in loaded]
            json.dump(data, fh, indent=2)
            fh.write("\n")
    return 0


def _as_json(o: Outcome) -> Any:
    extra = {"flagged": o.flagged, "correct": o.correct, "verdict": o.verdict, "warm_verdict": o.warm_verdict}
    extra.update(cli_median_seconds=o.cli_median, bare_median_seconds=o.bare_median, fresh_vs_bare_ratio=o.ratio)
    return _jsonable({**asdict(o), **extra})


# ---------------------------------------------------------------- discovery


def _discover(patterns: Sequence[str] | None) -> list[Path]:
    paths = sorted(p for p in SPECS.glob("*.py") if p.stem.startswith(("bug_", "ok_")))
    wanted = [w for pattern in patterns or () for w in pattern.split(",") if w]
    if wanted:
        globs = [w if any(c in w for c in "*?[") else f"*{w}*" for w in wanted]
        paths = [p for p in paths if any(fnmatch.fnmatch(p.stem, g) or fnmatch.fnmatch(p.name, g) for g in globs)]
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


# ---------------------------------------------------------------- the ways to run a spec


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "ci-checks"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ci_checks"]


def _run_cli(path: Path, tmp: str, threads: int) -> CliRun:
    out = os.path.join(tmp, f"{path.stem}.json")
    if os.path.exists(out):
        os.remove(out)  # our own file from an earlier repeat: a run that writes none must not read it
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
    run = CliRun()
    t0 = time.perf_counter()
    # Run from an empty directory so no pyproject.toml [tool.ci-checks] table changes the settings under test.
    try:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        run.seconds = time.perf_counter() - t0
        run.status, run.error = "error", f"timed out after {CLI_TIMEOUT_S}s"
        return run
    run.seconds = time.perf_counter() - t0
    run.exit = proc.returncode
    if proc.returncode not in (0, 1) or not os.path.exists(out):
        run.status = "error"
        run.error = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return run
    with open(out, encoding="utf-8") as fh:
        data = json.load(fh)
    run.status = data["status"]
    run.training_steps = data.get("subject", {}).get("training_steps")
    run.steps_taken = data.get("subject", {}).get("steps_taken", run.training_steps)
    for check in data["checks"]:
        if check["check"] == "memorization":
            run.stop_reason = str(check["figures"].get("stop_reason", ""))
        if check["status"] == "fail":
            run.failing.append(check["check"])
        elif check["status"] == "warn":
            run.warning.append(check["check"])
        for f in check["findings"]:
            if f["severity"] in ("error", "warning"):
                run.findings.append(f"{f['severity']}: {f['message']}")
    return run


def _record_cli(outcome: Outcome, run: CliRun) -> None:
    """The run that gives the spec's verdict and findings."""
    outcome.cli_status, outcome.cli_exit, outcome.cli_seconds = run.status, run.exit, run.seconds
    outcome.failing, outcome.warning, outcome.findings = run.failing, run.warning, run.findings
    outcome.cli_error, outcome.training_steps, outcome.stop_reason = run.error, run.training_steps, run.stop_reason
    outcome.steps_taken = run.steps_taken


# The bare script: what training the spec for as many steps costs without the checks. It builds the objects as
# the harness does (seed, setup or the factories, the batch on the same device) and calls the same step.
BARE_SCRIPT = """\
import sys

import torch

sys.path.insert(0, {root!r})
from benchmarks.overhead.run import bare_loop  # the one bare loop both benchmarks time
from ci_checks.spec import load_spec

ref, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
bare_loop(load_spec(ref), steps)
""".format(root=str(HERE.parent.parent))


def _run_bare(path: Path, outcome: Outcome, script: str, tmp: str, threads: int) -> None:
    """Time the bare script for train-check's number of training steps, in a fresh process from an empty folder."""
    steps = outcome.steps_taken or 0  # equal work: every step train-check took, not only its shared run's
    cmd = [sys.executable, script, f"{path}:spec", str(steps), str(threads)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=BARE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        outcome.bare_error = f"timed out after {BARE_TIMEOUT_S}s"
        return
    seconds = time.perf_counter() - t0
    outcome.bare_steps = steps
    if proc.returncode != 0:
        outcome.bare_error = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return
    outcome.bare_seconds.append(seconds)


def _burn() -> None:
    """Keep one core busy with pure-Python arithmetic until terminated."""
    n = 1
    while True:
        n = (n * 1103515245 + 12345) % 2147483648


@contextmanager
def _cpu_load(processes: int) -> Iterator[None]:
    """Run the block while `processes` busy processes compete for the CPU; they are ended however the block ends."""
    import multiprocessing

    # spawn, not fork: never fork a process that has imported torch; the children import only this module.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_burn, name=f"ci-checks-bench-busy-{i}", daemon=True) for i in range(processes)]
    try:
        for proc in procs:
            proc.start()
        yield
    finally:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                proc.terminate()
        for proc in procs:
            if proc.pid is None:
                continue
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _run_inprocess(path: Path, outcome: Outcome) -> None:
    from ci_checks._errors import UserError
    from ci_checks.checks import run_checks

    t0 = time.perf_counter()
    try:
        report = run_checks(f"{path}:spec")
    except UserError as e:  # exit 2 in the CLI
        outcome.inproc_seconds = time.perf_counter() - t0
        outcome.inproc_status, outcome.inproc_error = "error", str(e)
        return
    except Exception as e:  # noqa: BLE001 - exit 3 in the CLI: reported, and the benchmark goes on
        outcome.inproc_seconds = time.perf_counter() - t0
        outcome.inproc_status, outcome.inproc_error = "error", f"internal error: {type(e).__name__}: {e}"
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

    t0 = time.perf_counter()
    try:
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
    except Exception as e:  # noqa: BLE001 - a spec the baseline cannot even build: no verdict
        outcome.baseline_seconds = time.perf_counter() - t0
        outcome.baseline_broken, outcome.baseline_reason = None, f"building the spec raised {type(e).__name__}: {e}"
        return
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
    args: argparse.Namespace,
) -> dict[str, Any]:
    bugs = [o for o in outcomes if o.expected == "bug"]
    oks = [o for o in outcomes if o.expected == "ok"]
    cli = [o.cli_median for o in outcomes]
    warm = [o.inproc_seconds for o in outcomes]
    base = [o.baseline_seconds for o in outcomes]
    by_intended = [o for o in bugs if o.intended and set(o.intended) & set(o.failing)]
    ratios = [o.ratio for o in outcomes if math.isfinite(o.ratio)]
    return {
        "specs": len(outcomes),
        "buggy": len(bugs),
        "correct": len(oks),
        "threads": args.threads,
        "repeats": args.repeats,
        "ci_checks": {
            "detected": sum(o.flagged for o in bugs),
            "detected_by_intended_check": len(by_intended),
            "missed": [o.spec for o in bugs if not o.flagged],
            "caught_by_another_check": [o.spec for o in bugs if o.flagged and o.intended and o not in by_intended],
            "false_alarms": sum(o.flagged for o in oks),
            "false_alarm_specs": [o.spec for o in oks if o.flagged],
            "warnings_on_correct": sum(o.cli_status == "warn" for o in oks),
            "exit_3": sum(e == 3 for o in outcomes for e in o.cli_repeat_exits),
            "exit_3_specs": [o.spec for o in outcomes if 3 in o.cli_repeat_exits],
            "exit_2_specs": [o.spec for o in outcomes if 2 in o.cli_repeat_exits],
            "warm_internal_errors": [o.spec for o in outcomes if o.inproc_error.startswith("internal error")],
            "repeat_verdict_differences": [o.spec for o in outcomes if len(set(o.cli_repeat_verdicts)) > 1],
            "fresh_process_seconds": _stats(cli),
            "in_process_seconds": _stats(warm),
            "fresh_vs_warm_disagreements": [
                o.spec for o in outcomes if (o.cli_status == "fail") != (o.inproc_status == "fail")
            ],
        },
        "bare_script": {
            "what": "a fresh process that imports torch, builds the spec through load_spec and trains as many "
            "steps as train-check took in all (its shared run, reproducibility and checkpoint), with the spec's own "
            "step",
            "fresh_process_seconds": _stats([o.bare_median for o in outcomes if math.isfinite(o.bare_median)]),
            "train_check_over_bare": _stats(ratios),
            "errors": [o.spec for o in outcomes if o.bare_error],
        },
        "baseline": {
            "rule": f"broken unless the loss falls below {BASELINE_FRACTION:.0%} of its first value within the "
            "memorization step/time budget (or the step raises, or the loss goes non-finite)",
            "detected": sum(bool(o.baseline_broken) for o in bugs),
            "false_alarms": sum(bool(o.baseline_broken) for o in oks),
            "in_process_seconds": _stats(base),
        },
        "fixed_process_cost_seconds": fixed,
        "code": _code_state(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "total_seconds": total,
    }


def _stats(values: Sequence[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"median": math.nan, "max": math.nan, "sum": math.nan}
    return {"median": statistics.median(finite), "max": max(finite), "sum": sum(finite)}


def _load_summary(
    outcomes: list[Outcome], loaded: list[Outcome], processes: int, load_during: list[float]
) -> dict[str, Any]:
    """Which verdicts changed when the CPU was shared with busy processes."""
    return {
        "busy_processes": processes,
        "load_average_during": max(load_during, default=math.nan),
        "verdict_differences": [
            {"spec": o.spec, "unloaded": o.verdict, "loaded": lo.verdict}
            for o, lo in zip(outcomes, loaded)
            if o.verdict != lo.verdict
        ],
        "warm_verdict_differences": [
            {"spec": o.spec, "unloaded": o.warm_verdict, "loaded": lo.warm_verdict}
            for o, lo in zip(outcomes, loaded)
            if o.warm_verdict != lo.warm_verdict
        ],
        "baseline_verdict_differences": [
            {"spec": o.spec, "unloaded": o.baseline_verdict, "loaded": lo.baseline_verdict}
            for o, lo in zip(outcomes, loaded)
            if o.baseline_verdict != lo.baseline_verdict
        ],
        "exit_3": sum(lo.cli_exit == 3 for lo in loaded),
        "exit_3_specs": [lo.spec for lo in loaded if lo.cli_exit == 3],
        "fresh_process_seconds": _stats([lo.cli_seconds for lo in loaded]),
    }


def _width(outcomes: list[Outcome]) -> int:
    return max([34] + [len(o.spec) for o in outcomes])


def _print_table(outcomes: list[Outcome]) -> None:
    w = _width(outcomes)
    head = (
        f"{'spec':{w}} {'expect':6} {'verdict':7} {'':11} {'fresh s':>7} {'warm s':>6} {'steps':>5} {'stop':5}  "
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
            failing = f"exit {o.cli_exit}: {o.cli_error}"
        if (o.cli_status == "fail") != (o.inproc_status == "fail"):
            failing += f" (warm run: {o.inproc_status}: {', '.join(o.inproc_failing)})"
        baseline = o.baseline_verdict
        b_mark = "" if bool(o.baseline_broken) == (o.expected == "bug") else "*"
        steps = "" if o.training_steps is None else str(o.training_steps)
        stop = STOP_REASONS.get(o.stop_reason, o.stop_reason[:5])
        print(
            f"{o.spec:{w}} {o.expected:6} {o.cli_status:7} {mark:11} {o.cli_median:7.2f} {o.inproc_seconds:6.2f} "
            f"{steps:>5} {stop:5}  {baseline + b_mark:8} {o.baseline_steps:7d} {o.baseline_seconds:5.2f}  {failing}"
        )
    print(
        "(MISSED: a buggy spec passed; FALSE ALARM: a correct spec failed; (other chk): caught, but not by a check "
        "its docstring names; fresh s: median of the fresh-process runs; steps/stop: the fresh process's shared "
        "training run and why it stopped (mem: memorized, steps: step budget, TIME: the memorization.max-seconds "
        "wall-clock budget, stall: no progress, noupd: no parameter changed, nan: non-finite loss); baseline *: the "
        "baseline got it wrong)"
    )
    print()
    for o in outcomes:
        disagree = (o.cli_status == "fail") != (o.inproc_status == "fail")
        other = o.expected == "bug" and o.flagged and o.intended and not set(o.intended) & set(o.failing)
        if o.correct and not other and not disagree and o.cli_status != "error":
            continue
        wanted = f"should be caught by {', '.join(o.intended) or '-'}" if o.expected == "bug" else "correct code"
        print(f"{o.spec}: {wanted}; fresh process said {o.verdict} (training stopped: {o.stop_reason or '-'})")
        for f in o.findings:
            print(f"    {f}")
        if not o.findings and o.cli_error:
            print(f"    {o.cli_error}")
        if disagree:
            print(f"  warm process said {o.warm_verdict} (training stopped: {o.inproc_stop_reason or '-'})")
            for f in o.inproc_findings or [o.inproc_error]:
                print(f"    {f}")
    print()
    print("baseline reasons:")
    for o in outcomes:
        print(f"    {o.spec:{w}} {o.baseline_verdict:6} {o.baseline_reason}")
    print()


def _print_timing(outcomes: list[Outcome], repeats: int) -> None:
    """Fresh-process train-check against the bare script training as many steps, medians of the repeats."""
    w = _width(outcomes)
    print(f"fresh-process seconds, median of {repeats}: train-check vs a bare script training as many steps")
    head = f"{'spec':{w}} {'steps':>5} {'train-check':>11} {'bare':>6} {'ratio':>6}  verdicts of the {repeats} runs"
    print(head)
    print("-" * len(head))
    for o in outcomes:
        steps = "" if o.steps_taken is None else str(o.steps_taken)
        verdicts = "same" if len(set(o.cli_repeat_verdicts)) <= 1 else " | ".join(o.cli_repeat_verdicts)
        bare = f"{o.bare_median:6.2f}" if math.isfinite(o.bare_median) else f"{'n/a':>6}"
        ratio = f"{o.ratio:5.2f}x" if math.isfinite(o.ratio) else f"{'n/a':>6}"
        note = f"  (bare script: {o.bare_error})" if o.bare_error else ""
        print(f"{o.spec:{w}} {steps:>5} {o.cli_median:11.2f} {bare} {ratio}  {verdicts}{note}")
    ratios = [o.ratio for o in outcomes if math.isfinite(o.ratio)]
    if ratios:
        cli = sum(o.cli_median for o in outcomes if math.isfinite(o.ratio))
        bare_sum = sum(o.bare_median for o in outcomes if math.isfinite(o.ratio))
        print(
            f"median ratio {statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x); "
            f"all specs {cli:.1f}s train-check vs {bare_sum:.1f}s bare ({cli / bare_sum:.2f}x)"
        )
    print()


def _print_load(outcomes: list[Outcome], loaded: list[Outcome], processes: int) -> None:
    w = _width(outcomes)
    print(f"verdicts with {processes} busy processes loading the CPU vs unloaded (fresh process; warm; baseline)")
    v = max([8] + [len(x.verdict) for x in outcomes + loaded])
    head = f"{'spec':{w}} {'same':4}  {'fresh s':>7}  {'unloaded':{v}}  loaded"
    print(head)
    print("-" * (len(head) + v))
    for o, lo in zip(outcomes, loaded):
        same = o.verdict == lo.verdict
        print(f"{o.spec:{w}} {'yes' if same else 'NO':4}  {lo.cli_seconds:7.2f}  {o.verdict:{v}}  {lo.verdict}")
        if not same:
            for f in lo.findings or [lo.cli_error]:
                print(f"    loaded: {f}")
        if o.warm_verdict != lo.warm_verdict:
            print(f"    warm verdict differs: {o.warm_verdict} -> {lo.warm_verdict}")
        if o.baseline_verdict != lo.baseline_verdict:
            print(f"    baseline verdict differs: {o.baseline_verdict} -> {lo.baseline_verdict} ({lo.baseline_reason})")
    print()


def _print_summary(s: dict[str, Any]) -> None:
    c, b, bare = s["ci_checks"], s["baseline"], s["bare_script"]
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
    bs, ratio = bare["fresh_process_seconds"], bare["train_check_over_bare"]
    print(
        f"bare script (fresh process, same steps in all, median of {s['repeats']}): median {bs['median']:.2f}s per "
        f"spec; train-check / bare: median {ratio['median']:.2f}x, max {ratio['max']:.2f}x"
    )
    print(f"baseline rule: {b['rule']}")
    print(
        f"fixed cost of a fresh process (median of {FIXED_COST_REPEATS}): import torch {fixed['import_torch']:.2f}s, "
        f"import torch + first optimizer {fixed['import_torch_first_optimizer']:.2f}s, "
        f"ci-checks --help {fixed['ci_checks_help']:.2f}s"
    )
    print()
    print(f"false alarms (correct specs failed): {_names(c['false_alarm_specs'])}")
    print(
        f"detected by the intended check: {c['detected_by_intended_check']}/{s['buggy']}; "
        f"caught by another check: {_names(c['caught_by_another_check'])}; missed: {_names(c['missed'])}"
    )
    runs = s["specs"] * (s["repeats"] + (1 if "load" in s else 0))
    exit_3 = c["exit_3"] + (s["load"]["exit_3"] if "load" in s else 0)
    exit_3_specs = list(dict.fromkeys(c["exit_3_specs"] + (s["load"]["exit_3_specs"] if "load" in s else [])))
    print(f"exit 3 (internal error), must be 0: {exit_3} of {runs} fresh runs: {_names(exit_3_specs)}")
    if c["exit_2_specs"]:
        print(f"exit 2 (bad input): {_names(c['exit_2_specs'])}")
    if c["warm_internal_errors"]:
        print(f"internal errors in the warm process: {_names(c['warm_internal_errors'])}")
    if s["repeats"] > 1:
        print(
            f"verdicts that differ between the {s['repeats']} unloaded fresh runs: "
            f"{len(c['repeat_verdict_differences'])}: {_names(c['repeat_verdict_differences'])}"
        )
    if "load" in s:
        ld = s["load"]
        diffs = ld["verdict_differences"]
        print(
            f"verdicts that differ under load ({ld['busy_processes']} busy processes, load average up to "
            f"{ld['load_average_during']:.1f}): {len(diffs)} of {s['specs']}: "
            f"{_names([d['spec'] for d in diffs])}; warm: {len(ld['warm_verdict_differences'])}, "
            f"baseline: {len(ld['baseline_verdict_differences'])}"
        )
    if c["fresh_vs_warm_disagreements"]:
        print(f"fresh-process and warm verdicts disagree on: {', '.join(c['fresh_vs_warm_disagreements'])}")
    print(f"ci_checks code: {s['code']}")
    if s.get("code_changed_during_run"):
        print(
            "WARNING: ci_checks/ changed while the benchmark ran: runs measured different code, so verdicts that "
            "differ between repeats or under load say nothing about the machine's speed; run it again"
        )
    lb, la = s["load_average_before"], s["load_average_after"]
    print(
        f"load average before {lb[0]:.2f}, after {la[0]:.2f} (timings are noisy if other work shared the cores); "
        f"benchmark wall time {s['total_seconds']:.0f}s"
    )


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _code_fingerprint() -> str:
    """A hash of the ci_checks sources, to tell when the code under test changed while the benchmark ran."""
    import hashlib

    digest = hashlib.sha256()
    package = HERE.parent.parent / "ci_checks"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:  # removed between listing and reading: a change too
            digest.update(b"<unreadable>")
    return digest.hexdigest()


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
