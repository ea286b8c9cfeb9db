"""compare: the working tree's metrics against the base branch's, per-metric policy and seed-aware verdicts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ci_checks.commands import add_config_option, add_results_options, emit_results
from ci_checks.config import validate_section
from ci_checks.schema import FAIL_ON

HELP = "compare the working tree's metrics with the base branch (per-metric policy, seed-aware tests)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        metavar="REF",
        help="git revision to compare with (default: [tool.ci-checks.compare] "
        "base, else the merge-base of HEAD with the remote's default branch, else main)",
    )
    parser.add_argument(
        "--head-dir",
        default=".",
        metavar="DIR",
        help="project folder whose working tree holds the new metrics (default: .)",
    )
    add_config_option(parser, above="--head-dir")
    add_results_options(parser)
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default=None,
        help="what fails the run: regressed (a gating metric regressed or is not a number), missing (also a "
        "gating metric gone), any (any metric regressed, missing or invalid), never (default: [tool.ci-checks."
        "compare] fail-on of the base revision, else regressed)",
    )
    parser.add_argument(
        "--policy-from",
        choices=("base", "head"),
        default="base",
        help="where the gate ([tool.ci-checks.compare] and [tool.ci-checks.metrics]) is read from: base (the base "
        "revision's pyproject.toml, so a pull request cannot loosen its own gate; its changes apply after merge) "
        "or head (the working tree's, e.g. to try a new policy locally) (default: base)",
    )
    parser.add_argument(
        "--base-results",
        metavar="FILE",
        help="train-check results JSON of the base, to compare steps-to-memorize (default: none)",
    )
    parser.add_argument(
        "--head-results", metavar="FILE", help="train-check results JSON of this change (default: none)"
    )
    parser.add_argument(
        "--base-metrics-json",
        metavar="FILE",
        help="compare results JSON saved by the last run on "
        "main: its values are the baseline, for repositories that do not commit metrics "
        "(default: read the base from git)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from ci_checks import config as _config
    from ci_checks._errors import UserError
    from ci_checks.checks import default_settings
    from ci_checks.render import plain

    config_path = args.config or _config.find_pyproject(args.head_dir)
    config = _config.load_config(config_path, defaults=default_settings())
    settings = config.get("compare") or validate_section("compare")

    def log(message: str) -> None:
        if not args.quiet:
            # Metric names and paths come from the pull request: one line each, never a workflow command.
            print(f"ci-checks compare: {plain(message)}", file=sys.stderr)

    from ci_checks.compare import compare  # the metric sources and statistics: only when the command runs

    try:
        report = compare(
            args.head_dir,
            base=args.base,
            settings=settings,
            policies=config.get("metrics") or {},
            fail_on=args.fail_on,
            base_metrics_json=args.base_metrics_json,
            base_results=args.base_results,
            head_results=args.head_results,
            log=log,
            # Without a pyproject.toml in the working tree the base's (one the pull request deleted) still judges.
            config_path=os.path.abspath(config_path or os.path.join(args.head_dir, "pyproject.toml")),
            policy_from=args.policy_from,
        )
    except UserError as e:
        # The message may quote a file or metric name from the pull request: one line, never a workflow command.
        raise UserError(plain(str(e))) from None
    return emit_results(report, args, config)


def main(argv: Sequence[str] | None = None) -> int:
    from ci_checks.main import main as cli

    return cli(["compare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
