"""The ci-checks command line: argparse subcommands, one error handler, one exit-code contract."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from ci_checks._errors import EXIT_USAGE, UserError, error_handler

TRAIN_CHECK = "train-check"
# Commands beyond the training checks: each module has HELP, add_arguments(parser) and run(args) -> int,
# and imports its heavy dependencies inside run(), so `ci-checks --help` stays fast.
COMMANDS = {
    "report": "ci_checks.report",
    "export-parity": "ci_checks.export_parity",
    "golden": "ci_checks.golden",
    "rerun": "ci_checks.rerun",
    "comment": "ci_checks.comment",
    "compare": "ci_checks.compare",
}


def _version() -> str:
    from ci_checks import __version__

    return __version__


def _add_spec_options(parser: argparse.ArgumentParser, *, suite: bool) -> None:
    parser.add_argument(
        "--spec",
        help="the training spec, FILE.py:FUNCTION or package.module:FUNCTION " "(default: 'spec' in [tool.ci-checks])",
    )
    if suite:
        parser.add_argument("--checks", help="comma-separated checks to run (default: all)")
        parser.add_argument("--skip", help="comma-separated checks to leave out (default: none)")
    parser.add_argument(
        "--format", choices=("text", "json", "github"), default=None, help="output format (default: text)"
    )
    parser.add_argument("--output", metavar="FILE", help="also write the JSON results to FILE (default: none)")
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
    parser.add_argument(
        "--config",
        metavar="PYPROJECT",
        help="pyproject.toml to read [tool.ci-checks] from " "(default: the nearest one above the working directory)",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")


def build_parser() -> argparse.ArgumentParser:
    from ci_checks.checks import CHECKS, module

    parser = argparse.ArgumentParser(
        prog="ci-checks",
        description="Catch silently broken deep-learning training before merge.",
        epilog="Exit codes: 0 clean, 1 a check failed, 2 usage error or bad input, 3 internal error, 130 interrupted.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    suite = sub.add_parser(TRAIN_CHECK, help="run all training smoke checks on a spec")
    _add_spec_options(suite, suite=True)
    for name in CHECKS:
        _add_spec_options(sub.add_parser(name, help=module(name).HELP), suite=False)
    for name, path in COMMANDS.items():
        command = importlib.import_module(path)
        command_parser = sub.add_parser(name, help=command.HELP, description=command.HELP)
        command_parser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
        )
        command.add_arguments(command_parser)
    return parser


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _resolve_checks(args: argparse.Namespace, config: dict[str, Any]) -> list[str]:
    from ci_checks._config import _closest
    from ci_checks.checks import CHECKS

    if args.command != TRAIN_CHECK:
        return [args.command]
    chosen = _split(args.checks) or list(config.get("checks", CHECKS))
    skip = _split(args.skip) or list(config.get("skip", []))
    for name in chosen + skip:
        if name not in CHECKS:
            raise UserError(f"unknown check {name!r}; {_closest(name, list(CHECKS), 'checks')}")
    return [c for c in CHECKS if c in chosen and c not in skip]


def _settings(
    args: argparse.Namespace, config: dict[str, Any], defaults: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    from ci_checks._config import coerce_setting, parse_value

    settings: dict[str, dict[str, Any]] = {k: dict(v) for k, v in config.items() if k in defaults}
    for item in args.overrides:
        key, eq, raw = item.partition("=")
        check, dot, name = key.partition(".")
        if not eq or not dot:
            raise UserError(f"--set {item!r}: expected CHECK.KEY=VALUE, e.g. memorization.max-steps=200")
        if check not in defaults:
            from ci_checks._config import _closest

            raise UserError(f"--set {item!r}: unknown check {check!r}; {_closest(check, list(defaults))}")
        settings.setdefault(check, {})[name] = coerce_setting(
            check, name, parse_value(raw), defaults[check], where="--set"
        )
    return settings


class _Progress:
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


def _train_check(args: argparse.Namespace) -> int:
    from ci_checks import _config
    from ci_checks._report import emit
    from ci_checks.checks import default_settings, run_checks

    defaults = default_settings()
    config_path = args.config or _config.find_pyproject()
    config = _config.load_config(config_path, defaults=defaults)
    spec = args.spec or config.get("spec")
    if not spec:
        raise UserError(
            'no training spec: pass --spec FILE.py:FUNCTION or set spec = "..." under [tool.ci-checks]'
            + (f" in {config_path}" if config_path else "")
        )
    checks = _resolve_checks(args, config)
    settings = _settings(args, config, defaults)
    fmt = args.format or config.get("format", "text")
    output = args.output or config.get("output")
    try:
        import torch
    except ImportError:
        raise UserError("torch is not installed; install it (pip install 'ci-checks[torch]' or torch itself)") from None
    # One thread by default: the checks' models are tiny, and on a shared 2-core runner a second thread made a
    # GRU step 13x slower (benchmarks/training_bugs).
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads or 1)
    progress = _Progress(enabled=not args.quiet)
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
    emit(report, fmt=fmt, output=output, stream=sys.stdout)
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with error_handler(debug=args.debug):
            if args.command in COMMANDS:
                return int(importlib.import_module(COMMANDS[args.command]).run(args))
            return _train_check(args)
    except SystemExit as e:  # error_handler's verdict: return it, so callers and tests get the code
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    return EXIT_USAGE  # pragma: no cover - error_handler always exits or returns above


if __name__ == "__main__":
    raise SystemExit(main())
