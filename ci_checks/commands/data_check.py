"""data-check: the datasets' expectations (pandera schemas, labels, duplicates, leakage between splits)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ci_checks.commands import add_config_option, add_results_options, emit_results

HELP = "check the datasets of [tool.ci-checks.data] against their expectations (pandera schemas, labels, leakage)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("datasets", nargs="*", metavar="DATASET", help="datasets to check (default: all configured)")
    add_config_option(parser)
    add_results_options(parser)
    parser.add_argument(
        "--max-rows",
        type=int,
        metavar="N",
        help="read at most N rows or samples of each dataset (default: max-rows of each dataset, else all)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from ci_checks.commands import project_config
    from ci_checks.data.runner import check_datasets

    config, path = project_config(args)
    report = check_datasets(config, path, args.datasets, max_rows=args.max_rows, quiet=args.quiet)
    return emit_results(report, args, config)


def main(argv: Sequence[str] | None = None) -> int:
    from ci_checks.main import main as cli

    return cli(["data-check", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
