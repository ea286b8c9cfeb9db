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
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


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
    return [c for c in registered if c in chosen and c not in skip]


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


def run(args: argparse.Namespace) -> int:
    from ci_checks.checks import default_settings, run_checks

    config, path = project_config(args)
    spec = spec_ref(args, config, path)  # a missing spec file or module fails here, before torch is imported
    checks = resolve_checks(args, config)
    settings = settings_of(args, config, default_settings())
    try:
        import torch
    except ImportError:
        raise UserError("torch is not installed; install it (pip install 'ci-checks[torch]' or torch itself)") from None
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads or DEFAULT_THREADS)
    progress = Progress(enabled=not args.quiet)
    try:
        report = run_checks(
            spec,
            checks,
            settings=settings,
            device=args.device or config.get("device"),
            seed=args.seed if args.seed is not None else config.get("seed"),
            progress=progress,
        )
    finally:
        progress.done()
    report.command = args.command  # train-check, or the one check run as its own subcommand
    return emit_results(report, args, config, output=args.output or config.get("output"))
