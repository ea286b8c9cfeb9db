"""score: the ML Test Score scorecard of the repository, from its workflows and configuration."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from ci_checks import _git
from ci_checks._errors import UserError
from ci_checks.commands import add_config_option, add_results_options, emit_results, project_config, write_results

HELP = "print which ML Test Score tests the repository's CI performs (data, model, infrastructure, monitoring)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="the repository's top folder, where .github/workflows is (default: the git top folder of the "
        "pyproject.toml's folder, else that folder)",
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="also score this git revision (the base branch) and report the change (default: none)",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        metavar="N",
        help="fail (exit 1) when the score, the lowest section's, is below N (default: never fail)",
    )
    add_results_options(parser)
    add_config_option(parser)


def _manual(table: Any, *, where: str, exists: Any, project: str, strict: bool) -> tuple[dict[str, str], list[str]]:
    """[tool.ci-checks.score] manual: test id -> document; unknown ids and missing documents are bad input."""
    from ci_checks.config import closest
    from ci_checks.scorecard.rubric import BY_ID

    manual = table.get("manual") if isinstance(table, Mapping) else None
    found: dict[str, str] = {}
    notes: list[str] = []
    for test_id, doc in (manual or {}).items() if isinstance(manual, Mapping) else []:
        if test_id not in BY_ID:
            if strict:
                raise UserError(f"{where}: manual names unknown test {test_id!r}; {closest(test_id, list(BY_ID))}")
            continue
        rel = os.path.normpath(os.path.join(project, str(doc))).replace(os.sep, "/")
        if not exists(rel):
            if strict:
                raise UserError(
                    f"{where}: manual {test_id} = {doc!r}: no such document; write the results of the test there or "
                    "remove the entry"
                )
            notes.append(f"{test_id}: {doc} not found")
            continue
        found[test_id] = str(doc)
    return found, notes


def run(args: argparse.Namespace) -> int:
    from ci_checks.render import render_json
    from ci_checks.scorecard import render_table, score, to_report
    from ci_checks.scorecard.scan import GitTree, WorkTree

    if args.min_score is not None and not 0 <= args.min_score <= 7:
        raise UserError(f"--min-score must be between 0 and 7 (a section has 7 tests), got {args.min_score:g}")
    config, path = project_config(args)
    home = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    if args.root:
        if not os.path.isdir(args.root):
            raise UserError(f"--root {args.root}: not a folder; pass the repository's top folder")
        root = os.path.abspath(args.root)
    else:
        found = _git.toplevel_and_prefix(home)
        root = found[0] if found else home
    project = os.path.relpath(home, root).replace(os.sep, "/")
    project = "" if project == "." or project.startswith("..") else project  # a config outside the repository
    where = f"[tool.ci-checks.score] in {path}" if path else "[tool.ci-checks.score]"
    manual, _ = _manual(
        config.get("score"),
        where=where,
        exists=lambda rel: os.path.isfile(os.path.join(root, rel)),
        project=project,
        strict=True,
    )
    card = score(WorkTree(root), config, project=project, manual=manual)
    subject: dict[str, Any] = {"root": root, "project": project or ".", "min_score": args.min_score}
    base = None
    if args.base:
        sha = _git.rev_parse(root, args.base)
        if sha is None:
            raise UserError(f"--base {args.base!r}: no such commit or branch in {root}; fetch it (git fetch origin)")
        base, base_table, base_manual, notes = _score_base(GitTree(root, args.base, sha), project)
        subject.update(base=args.base, base_sha=sha, base_notes=notes)
    report = to_report(card, subject=subject, base=base)
    gate = card
    if args.base and args.min_score is not None:
        # A pull request does not choose its own gate: the head's workflows, judged with the base's
        # [tool.ci-checks] (its metric policies and its manual declarations, as far as their documents still exist).
        kept = {k: v for k, v in base_manual.items() if os.path.isfile(os.path.join(root, project, v))}
        gate = score(WorkTree(root), base_table, project=project, manual=kept)
        report.checks[0].figures["gate_score"] = gate.overall
    if args.min_score is not None and gate.overall < args.min_score:
        judged = " judged with the base's configuration" if gate is not card else ""
        report.checks[0].add(
            "error",
            f"score: the ML Test Score{judged} is {gate.overall:g}, below --min-score {args.min_score:g}; wire the "
            "missing tests of the lowest section (ci-checks score lists them)",
            score=gate.overall,
        )
    fmt = args.format or config.get("format", "text")
    if fmt == "github":
        sys.stdout.write(render_table(card, base=base))  # the log gets the table, the summary the score
    if fmt != "text":
        return emit_results(report, args, config)
    if args.output:
        write_results(args.output, render_json(report))
    sys.stdout.write(render_table(card, base=base))
    for error in report.checks[0].findings:
        print(f"ci-checks: {error.message}", file=sys.stderr)
    return report.exit_code


def _score_base(tree: Any, project: str) -> tuple[Any, Mapping[str, Any], dict[str, str], list[str]]:
    """The scorecard of a revision (None when its files cannot be read), its [tool.ci-checks], its manual tests and
    notes; its configuration is read as it is, never validated against today's schema."""
    from ci_checks.scorecard import score
    from ci_checks.scorecard.scan import scan

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    pyproject = f"{project}/pyproject.toml" if project else "pyproject.toml"
    text = tree.read(pyproject)
    notes: list[str] = []
    table: Mapping[str, Any] = {}
    if text is not None:
        try:
            tool = tomllib.loads(text).get("tool", {})
            found = tool.get("ci-checks", {}) if isinstance(tool, Mapping) else {}
            table = found if isinstance(found, Mapping) else {}
        except tomllib.TOMLDecodeError as e:
            notes.append(f"{pyproject} at {tree.label} is not valid TOML ({e}); scored without [tool.ci-checks]")
    manual, missing = _manual(
        table.get("score"),
        where=pyproject,
        exists=lambda rel: tree.read(rel) is not None,
        project=project,
        strict=False,
    )
    try:
        found_scan = scan(tree)
    except UserError as e:  # a base that cannot be read has no score: the change is unknown, the head is still scored
        return None, table, manual, [*notes, f"the base was not scored: {e}"]
    return score(tree, table, project=project, manual=manual, found=found_scan), table, manual, notes + missing
