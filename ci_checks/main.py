"""The ci-checks command line: argparse subcommands, one error handler, one exit-code contract."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ci_checks._errors import EXIT_USAGE, error_handler
from ci_checks.commands import COMMANDS

TRAIN_CHECK = "train-check"
TRAIN_CHECK_MODULE = COMMANDS[TRAIN_CHECK]


def _version() -> str:
    from ci_checks import __version__

    return __version__


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")


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
        if name == TRAIN_CHECK:
            # Each training check is also a subcommand of its own, with the suite's options minus --checks/--skip.
            for check in checks.names():
                check_parser = sub.add_parser(check, help=checks.module(check).HELP)
                _add_debug(check_parser)
                train_check.add_arguments(check_parser, suite=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with error_handler(debug=args.debug):
            return int(importlib.import_module(COMMANDS.get(args.command, TRAIN_CHECK_MODULE)).run(args))
    except SystemExit as e:  # error_handler's verdict: return it, so callers and tests get the code
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    return EXIT_USAGE  # pragma: no cover - error_handler always exits or returns above


if __name__ == "__main__":
    raise SystemExit(main())
