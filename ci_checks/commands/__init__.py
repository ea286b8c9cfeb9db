"""The subcommands, one module each: HELP, add_arguments(parser) and run(args) -> int.

Each module imports its heavy dependencies (torch, onnxruntime, DVC, matplotlib) inside run(), so
`ci-checks --help` stays fast. The options every command shares are declared here once.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ci_checks.results import Report
from ci_checks.schema import FORMATS

# subcommand -> module (the training checks' own subcommands are added from ci_checks.checks.REGISTRY).
COMMANDS: dict[str, str] = {
    "train-check": "ci_checks.commands.train_check",
    "compare": "ci_checks.commands.compare",
    "report": "ci_checks.commands.report",
    "comment": "ci_checks.commands.comment",
    "rerun": "ci_checks.commands.rerun",
    "export-parity": "ci_checks.commands.export_parity",
    "golden": "ci_checks.commands.golden",
    "init": "ci_checks.commands.init",
    "data-check": "ci_checks.commands.data_check",
    "data-stats": "ci_checks.commands.data_stats",
    "quality": "ci_checks.commands.quality",
    "rollback": "ci_checks.commands.rollback",
    "score": "ci_checks.commands.score",
}


def add_config_option(parser: argparse.ArgumentParser, *, above: str = "the working directory") -> None:
    parser.add_argument(
        "--config",
        metavar="PYPROJECT",
        help=f"pyproject.toml to read [tool.ci-checks] from (default: the nearest one above {above})",
    )


def add_results_options(parser: argparse.ArgumentParser) -> None:
    """--format and --output, for every command that writes a results document."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: 'format' in [tool.ci-checks], else text)",
    )
    parser.add_argument("--output", metavar="FILE", help="also write the JSON results to FILE (default: none)")


def add_spec_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spec",
        help="the training spec, FILE.py:FUNCTION (relative to the working directory) or package.module:FUNCTION "
        "(default: 'spec' in [tool.ci-checks], relative to that pyproject.toml)",
    )


def project_config(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """[tool.ci-checks] from --config or the nearest pyproject.toml, validated, and the file it came from."""
    from ci_checks import config as _config
    from ci_checks.checks import default_settings

    path = getattr(args, "config", None) or _config.find_pyproject()
    return _config.load_config(path, defaults=default_settings()), path


def spec_ref(
    args: argparse.Namespace,
    config: Mapping[str, Any],
    path: str | None,
    *,
    what: str = "training spec",
    table: str = "[tool.ci-checks]",
) -> str:
    """The spec reference from --spec or `spec` in the table, checked to exist before anything imports torch.

    --spec is relative to the working directory; the configured spec to the pyproject.toml that declares it, so
    commands run from a subfolder find it.
    """
    import os

    from ci_checks._errors import UserError
    from ci_checks.spec import anchor_spec_ref, check_spec_ref

    spec = getattr(args, "spec", None)
    if not spec and config.get("spec"):
        spec = str(config["spec"])
        if path:
            spec = anchor_spec_ref(spec, os.path.dirname(os.path.abspath(path)))
    if not spec:
        raise UserError(
            f'no {what}: pass --spec FILE.py:FUNCTION or set spec = "..." under {table}'
            + (f" in {path}" if path else "")
        )
    check_spec_ref(str(spec))
    return str(spec)


def emit_results(report: Report, args: argparse.Namespace, config: dict[str, Any], *, output: str | None = None) -> int:
    """Write the report in the chosen format (--format, else [tool.ci-checks] format) and return its exit code.

    The JSON results file is written atomically (a reader never sees half of it) and before anything else, so a
    step that reads it after a crash of the rendering still finds this run's results.
    """
    import os
    import sys

    from ci_checks._errors import UserError
    from ci_checks.render import emit, render_json, render_text

    fmt = args.format or config.get("format", "text")
    output = output if output is not None else args.output
    elapsed = process_seconds()
    if elapsed is not None:
        report.subject["process_seconds"] = round(elapsed, 3)
    if output:
        write_results(output, render_json(report))
    try:
        if fmt == "json" and output:
            sys.stdout.write(render_text(report))  # the JSON went to the file; the log gets the text
        else:
            emit(report, fmt=fmt, output=None, stream=sys.stdout)
        if fmt == "github" and output and os.environ.get("GITHUB_OUTPUT"):
            with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
                fh.write(f"results={output}\n")
    except OSError as e:
        where = e.filename or "GITHUB_STEP_SUMMARY/GITHUB_OUTPUT"
        raise UserError(
            f"{where}: cannot write the GitHub step summary or outputs ({e.strerror or e}); check the "
            "GITHUB_STEP_SUMMARY and GITHUB_OUTPUT variables" + (f" (the results are in {output})" if output else "")
        ) from None
    for error in report.subject.get("internal_errors", []):
        print(
            f"ci-checks: internal error: {error} (the other checks' results are above; please report it)",
            file=sys.stderr,
        )
    return report.exit_code


def process_seconds() -> float | None:
    """Wall-clock seconds since this process started: Python's start-up and imports (torch's), not only the work
    the checks time themselves. Read from /proc on Linux; None where there is no /proc."""
    import os

    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            stat = fh.read()
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        # The command name (field 2) may hold spaces and parentheses: the fields after it start past the last ')'.
        start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def write_results(path: str, text: str) -> None:
    """Write a results file atomically; a path that cannot be written is bad input."""
    from ci_checks import _io
    from ci_checks._errors import UserError

    if any(c in path for c in "\r\n\0"):
        raise UserError(f"{path!r}: a results path cannot hold a line break; choose another --output path")
    try:
        _io.write_text(path, text)
    except OSError as e:
        raise UserError(f"{path}: cannot write results ({e.strerror or e}); choose another --output path") from None
