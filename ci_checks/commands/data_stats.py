"""data-stats: a statistics snapshot of each dataset, its drift against the base branch, and its trend on main."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ci_checks.commands import add_config_option, add_results_options, emit_results

HELP = "summarize the datasets of [tool.ci-checks.data] and compare them with the base branch's (drift)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "datasets", nargs="*", metavar="DATASET", help="datasets to summarize (default: all configured)"
    )
    add_config_option(parser)
    add_results_options(parser)
    parser.add_argument(
        "--base",
        nargs="?",
        const="",
        metavar="REF",
        help="compare with the data of this git revision, read from git or at the version its DVC files pin; "
        "--base alone: the merge-base with the default branch (default: no comparison)",
    )
    parser.add_argument(
        "--base-stats",
        metavar="FILE",
        help="compare with a data-stats results file saved on main instead of reading the base's data (default: none)",
    )
    parser.add_argument(
        "--policy-from",
        choices=("base", "head"),
        default="base",
        help="where the drift thresholds come from: base (the base revision's [tool.ci-checks.data], so a pull "
        "request cannot loosen its own gate) or head (default: base)",
    )
    parser.add_argument(
        "--history",
        metavar="DIR",
        help="a folder of data-stats results of earlier commits on main: the report shows the trend of the features "
        "that moved (default: none)",
    )
    parser.add_argument(
        "--record", action="store_true", help="also add this run's results to --history DIR (on main) (default: off)"
    )
    parser.add_argument(
        "--stats-dir", metavar="DIR", help="also write one JSON snapshot per dataset here (default: none)"
    )
    parser.add_argument(
        "--max-rows", type=int, metavar="N", help="read at most N rows or samples of each dataset (default: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from ci_checks._errors import UserError
    from ci_checks.commands import project_config
    from ci_checks.data.runner import log_to_stderr, stats_datasets
    from ci_checks.render import plain

    if args.record and not args.history:
        raise UserError("--record needs --history DIR, the folder to add this run's results to")
    if args.base is not None and args.base_stats:
        raise UserError("pass --base REF or --base-stats FILE, not both")
    config, path = project_config(args)
    try:
        report = stats_datasets(
            config,
            path,
            args.datasets,
            max_rows=args.max_rows,
            quiet=args.quiet,
            base=args.base,
            base_stats=args.base_stats,
            policy_from=args.policy_from,
            history=args.history,
            record=args.record,
            stats_dir=args.stats_dir,
            log=log_to_stderr(args.quiet),
        )
    except UserError as e:
        raise UserError(plain(str(e))) from None  # file and column names come from the pull request: one line
    report.subject["policy"] = _own_policy(config)  # this revision's gate, for a later --base-stats of these results
    return emit_results(report, args, config)


def _own_policy(config: dict[str, object]) -> dict[str, object]:
    from ci_checks.data.config import drift_settings

    return drift_settings(config)


def main(argv: Sequence[str] | None = None) -> int:
    from ci_checks.main import main as cli

    return cli(["data-stats", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
