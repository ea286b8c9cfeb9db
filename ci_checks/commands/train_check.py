"""train-check: run the training smoke checks on a spec (all of them, or one as its own subcommand)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ci_checks._errors import UserError
from ci_checks.commands import add_config_option, add_results_options, add_spec_option, emit_results
from ci_checks.commands import project_config, spec_ref

HELP = "run all training smoke checks on a spec"
# One thread by default: the checks' models are tiny, and on a shared 2-core runner a second thread made a GRU step
# 13x slower (benchmarks/training_bugs). actions/train-check documents the same default (tests/test_actions.py).
DEFAULT_THREADS = 1
# torch.set_num_threads(100000) crashes the process in OpenMP; no smoke test needs more.
MAX_THREADS = 1024


def add_arguments(parser: argparse.ArgumentParser, *, suite: bool = True) -> None:
    add_spec_option(parser)
    if suite:
        parser.add_argument("--checks", help="comma-separated checks to run (default: all)")
        parser.add_argument("--skip", help="comma-separated checks to leave out (default: none)")
    add_results_options(parser)
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: the spec's, else cuda if present)")
    parser.add_argument("--seed", type=int, help="seed for every run (default: the spec's, else 0)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="CHECK.KEY=VALUE",
        help="override a check setting, e.g. memorization.max-steps=200 (repeatable)",
    )
    add_config_option(parser)
    parser.add_argument("--threads", type=int, metavar="N", help=f"torch intra-op threads (default: {DEFAULT_THREADS})")
    parser.add_argument(
        "--step-timeout",
        type=float,
        metavar="SECONDS",
        help="stop a training step that runs longer and report it as a finding; a safety cap, verdicts are decided "
        "by steps (default: 60)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    if suite:
        # The CPU tier in one process: torch, the spec and the model are loaded once, not once per command.
        parser.add_argument(
            "--export-parity",
            action="store_true",
            help="also check ONNX export parity (as ci-checks export-parity with its defaults) in this process, "
            "into the same results (default: off)",
        )
        parser.add_argument(
            "--golden",
            action="store_true",
            help="also compare the golden suites of [tool.ci-checks.golden] (as ci-checks golden) in this process, "
            "into the same results (default: off)",
        )


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def resolve_checks(args: argparse.Namespace, config: dict[str, Any]) -> list[str]:
    """The checks to run: the subcommand's own check, or --checks/--skip (else the config's), in registry order."""
    from ci_checks.checks import names
    from ci_checks.config import closest

    registered = names()
    if args.command != "train-check":
        return [args.command]
    chosen = _split(getattr(args, "checks", None)) or list(config.get("checks", registered))
    skip = _split(getattr(args, "skip", None)) or list(config.get("skip", []))
    for name in chosen + skip:
        if name not in registered:
            raise UserError(f"unknown check {name!r}; {closest(name, list(registered), 'checks')}")
    selected = [c for c in registered if c in chosen and c not in skip]
    if not selected:
        raise UserError(
            f"no checks left to run: --skip/skip leaves out every selected check ({', '.join(chosen)}); "
            "a run that checks nothing cannot pass"
        )
    return selected


def settings_of(
    args: argparse.Namespace, config: dict[str, Any], defaults: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per-check settings from [tool.ci-checks.<check>], then --set CHECK.KEY=VALUE."""
    from ci_checks.config import closest, coerce_setting, parse_value

    settings: dict[str, dict[str, Any]] = {k: dict(v) for k, v in config.items() if k in defaults}
    for item in args.overrides:
        key, eq, raw = item.partition("=")
        check, dot, name = key.partition(".")
        if not eq or not dot:
            raise UserError(f"--set {item!r}: expected CHECK.KEY=VALUE, e.g. memorization.max-steps=200")
        if check not in defaults:
            raise UserError(f"--set {item!r}: unknown check {check!r}; {closest(check, list(defaults))}")
        settings.setdefault(check, {})[name] = coerce_setting(
            check, name, parse_value(raw), defaults[check], where="--set"
        )
    return settings


class Progress:
    """Progress lines on stderr: redrawn in place on a terminal, one line every few seconds in CI logs."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = time.perf_counter()
        self.drawn = False

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            sys.stderr.write(f"\r\033[K{message}")
            self.drawn = True
        elif now - self.last >= 5.0:
            sys.stderr.write(message + "\n")
            self.last = now
        sys.stderr.flush()

    def done(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _check_options(args: argparse.Namespace, seed: Any) -> None:
    """Options that would crash torch (or run forever) are bad input, said before anything is imported."""
    import math
    import os

    from ci_checks.engine.session import DEFAULT_STEP_SECONDS

    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        raise UserError(
            f"--threads must be between 1 and {MAX_THREADS}, got {args.threads} (this machine has {cpus} CPUs)"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1):
        where = "--seed" if args.seed is not None else "seed in [tool.ci-checks]"
        raise UserError(f"{where} must be an integer from 0 to 4294967295 (2**32 - 1), got {seed!r}")
    timeout = DEFAULT_STEP_SECONDS if args.step_timeout is None else args.step_timeout
    if not 0 < timeout < math.inf:
        raise UserError(f"--step-timeout must be a positive number of seconds, got {args.step_timeout:g}")


def run(args: argparse.Namespace) -> int:
    from ci_checks._io import remove_stale
    from ci_checks.checks import default_settings, run_checks
    from ci_checks.engine.session import DEFAULT_STEP_SECONDS, step_time_limit

    config, path = project_config(args)
    output = args.output or config.get("output")
    if output:
        remove_stale(output)  # exit 2, 3 or 130 from here on leaves no earlier results behind
    spec = spec_ref(args, config, path)  # a missing spec file or module fails here, before torch is imported
    checks = resolve_checks(args, config)
    settings = settings_of(args, config, default_settings())
    seed = args.seed if args.seed is not None else config.get("seed")
    _check_options(args, seed)
    try:
        import torch
    except ImportError:
        raise UserError("torch is not installed; install it (pip install 'ci-checks[torch]' or torch itself)") from None
    golden = _golden_settings(config, path) if getattr(args, "golden", False) else None
    torch.set_num_threads(args.threads or DEFAULT_THREADS)
    progress = Progress(enabled=not args.quiet)
    limit = DEFAULT_STEP_SECONDS if args.step_timeout is None else args.step_timeout
    try:
        with step_time_limit(limit, hard_stop=True):
            report = run_checks(
                spec,
                checks,
                settings=settings,
                device=args.device or config.get("device"),
                seed=seed,
                progress=progress,
            )
        if getattr(args, "export_parity", False):
            from ci_checks.commands.export_parity import export_parity

            progress("export parity: exporting the model to ONNX and running it in onnxruntime")
            _merge(report, export_parity(spec), "export_parity")
        if golden is not None:
            from ci_checks.commands.golden import golden_check

            progress(f"golden: comparing {len(golden['suites'])} suite(s) with their recorded outputs")
            _merge(
                report,
                golden_check(
                    spec,
                    dict(golden["suites"]),
                    directory=golden["dir"],
                    weights=golden["weights"],
                    atol=golden["atol"],
                    rtol=golden["rtol"],
                ),
                "golden",
            )
    finally:
        progress.done()
    report.command = args.command  # train-check, or the one check run as its own subcommand
    return emit_results(report, args, config, output=output)


def _golden_settings(config: dict[str, Any], path: str | None) -> dict[str, Any]:
    """[tool.ci-checks.golden] for --golden, checked before anything trains: no suites is bad input."""
    from ci_checks.config import validate_section

    golden = config.get("golden") or validate_section("golden")
    if not golden["suites"]:
        raise UserError(
            "--golden: no golden suites under [tool.ci-checks.golden]"
            + (f" in {path}" if path else "")
            + '; add suites = {NAME = "inputs.pt"} there, or drop --golden'
        )
    return dict(golden)


def _merge(report: Any, other: Any, key: str) -> None:
    """Another command's results into the training checks' report: its checks appended, its subject under key."""
    report.checks.extend(other.checks)
    report.subject[key] = other.subject
    errors = other.subject.get("internal_errors")
    if errors:
        report.subject.setdefault("internal_errors", []).extend(errors)
