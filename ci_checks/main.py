"""The ci-checks command line: argparse subcommands, one error handler, one exit-code contract."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence

from ci_checks._errors import EXIT_INTERRUPTED, EXIT_USAGE, error_handler, guard_process_exits, interrupt_on_signals
from ci_checks.commands import COMMANDS

TRAIN_CHECK = "train-check"
TRAIN_CHECK_MODULE = COMMANDS[TRAIN_CHECK]


def _version() -> str:
    from ci_checks import __version__

    return str(__version__)


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """Every command accepts --quiet, so a workflow can pass it to any of them; most declare their own."""
    if "--quiet" not in parser._option_string_actions:
        parser.add_argument("--quiet", action="store_true", help="no progress or status lines on stderr")


def build_parser() -> argparse.ArgumentParser:
    from ci_checks import checks

    parser = argparse.ArgumentParser(
        prog="ci-checks",
        description="Catch silently broken deep-learning training before merge.",
        epilog="Exit codes: 0 clean, 1 a check failed, 2 usage error or bad input, 3 internal error, 130 interrupted.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train_check = importlib.import_module(TRAIN_CHECK_MODULE)
    for name, path in COMMANDS.items():
        command = importlib.import_module(path)
        command_parser = sub.add_parser(name, help=command.HELP, description=command.HELP)
        _add_debug(command_parser)
        command.add_arguments(command_parser)
        _add_quiet(command_parser)
        if name == TRAIN_CHECK:
            # Each training check is also a subcommand of its own, with the suite's options minus --checks/--skip.
            for check in checks.names():
                check_parser = sub.add_parser(check, help=checks.module(check).HELP)
                _add_debug(check_parser)
                train_check.add_arguments(check_parser, suite=False)
    return parser


def _stale_outputs(args: argparse.Namespace) -> list[str]:
    """--output of this run: removed before the command runs, so a run that ends in exit 2, 3 or 130 leaves no
    earlier run's results to be read as its own (an input named as the output is kept)."""
    import os

    output = getattr(args, "output", None)
    if not output:
        return []
    inputs = {os.path.abspath(p) for p in getattr(args, "results", None) or []}
    return [] if os.path.abspath(output) in inputs else [output]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except KeyboardInterrupt:  # Ctrl-C while the commands are imported: no traceback
        print("ci-checks: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from ci_checks._io import remove_stale

    try:
        with _crash_traceback(), interrupt_on_signals(), error_handler(debug=args.debug), guard_process_exits():
            for output in _stale_outputs(args):
                remove_stale(output)
            return int(importlib.import_module(COMMANDS.get(args.command, TRAIN_CHECK_MODULE)).run(args))
    except SystemExit as e:  # error_handler's verdict: return it, so callers and tests get the code
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    return EXIT_USAGE  # pragma: no cover - error_handler always exits or returns above


@contextlib.contextmanager
def _crash_traceback() -> Iterator[None]:
    """A crash in native code (a segfault in a C extension the model calls) prints the Python stack on stderr, so
    the user's frame is named even when the process cannot report it in the results."""
    import faulthandler

    if faulthandler.is_enabled():
        yield
        return
    try:
        faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    except (AttributeError, ValueError, OSError):  # no usable stderr file descriptor (an embedding host)
        yield
        return
    try:
        yield
    finally:
        faulthandler.disable()


if __name__ == "__main__":
    raise SystemExit(main())
