"""compare(): the working tree's metrics against a base revision, assembled into one Report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ci_checks._errors import UserError
from ci_checks.compare import sources
from ci_checks.compare.base import NO_GIT, find_repo, open_base
from ci_checks.compare.files import Metric, read_params
from ci_checks.compare.policy import (
    FAIL_ON,
    check_policies,
    closest_metrics,
    policy_for,
    unmatched_message,
    unmatched_optional,
)
from ci_checks.compare.trees import GLOB_CHARS, GitTree, Tree, WorkingTree
from ci_checks.compare.verdicts import curve_result, metric_result
from ci_checks.config import validate_section
from ci_checks.results import Kind, Verdict

if TYPE_CHECKING:
    from ci_checks.results import Report


def compare(
    head_dir: str = ".",
    *,
    base: str | None = None,
    settings: Mapping[str, Any] | None = None,
    policies: Mapping[str, Mapping[str, Any]] | None = None,
    fail_on: str | None = None,
    base_metrics_json: str | None = None,
    base_results: str | None = None,
    head_results: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Compare the metrics of head_dir's working tree with a base revision; return a Report (command "compare")."""
    from ci_checks.results import CheckResult, Location, Report

    settings = validate_section("compare", settings or {}, where="compare settings")
    policies = policies or {}
    fail_on = fail_on or settings["fail-on"]
    if fail_on not in FAIL_ON:
        raise UserError(f"fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    env = os.environ if env is None else env
    log = log or (lambda message: None)
    if (base_results is None) != (head_results is None):
        raise UserError("pass both --base-results and --head-results (train-check results of main and of this change)")
    head_dir = os.path.abspath(head_dir)
    if not os.path.isdir(head_dir):
        raise UserError(f"{head_dir}: no such folder; pass the project folder to --head-dir")

    repo = find_repo(head_dir, hint=NO_GIT)
    head_tree = WorkingTree(head_dir)
    side = open_base(
        head_dir,
        repo,
        base or settings.get("base"),
        fetch_depth=int(settings["fetch-depth"]),
        saved_results=base_metrics_json,
        env=env,
        log=log,
    )
    ctx = sources.Context(
        head_dir=head_dir,
        settings=settings,
        base_name=side.name,
        saved_base=side.saved_metrics,
        base_results=base_results,
        head_results=head_results,
        log=log,
    )
    try:
        readings = [source.read(head_tree, side.tree, ctx) for source in sources.SOURCES]
        params_changed = _params_changed(head_tree, side.tree, [p for r in readings for p in r.params])
    finally:
        side.tree.close()

    head_metrics: dict[str, Metric] = {}
    base_metrics: dict[str, Metric] = dict(side.saved_metrics)
    for found in readings:
        for name, metric in found.head.items():
            head_metrics.setdefault(name, metric)
        for name, metric in found.base.items():
            base_metrics.setdefault(name, metric)
        if found.base_source is not None:
            side.subject["source"] = found.base_source  # base values came (also) from elsewhere than git
    expected = list(dict.fromkeys(p for r in readings for p in r.expected))

    first_run = not base_metrics
    names = list(dict.fromkeys([*head_metrics, *base_metrics]))
    if names:
        check_policies(policies, names)
    saved = side.subject["source"] == "results-json"
    label = f"{side.name} (saved results)" if saved else side.name
    report = Report(command="compare")
    counts: dict[str, int] = {}
    for name in names:
        started = time.perf_counter()
        result = metric_result(
            name,
            base_metrics.get(name),
            head_metrics.get(name),
            policy_for(name, policies),
            fail_on=fail_on,
            label=label,
            first_run=first_run,
        )
        if repo is not None:
            file = (head_metrics.get(name) or base_metrics[name]).file
            if not GLOB_CHARS.search(file):
                for finding in result.findings:
                    finding.location = finding.location or Location(repo.prefix + file)
        result.duration_s = time.perf_counter() - started
        counts[result.figures["verdict"]] = counts.get(result.figures["verdict"], 0) + 1
        report.checks.append(result)
    for unknown in unmatched_optional(policies, names):
        result = CheckResult(
            f"policy {unknown}",
            figures={"kind": Kind.POLICY.value, "key": unknown, "closest": closest_metrics(unknown, names)},
        )
        result.add("warning", unmatched_message(unknown, names))
        result.summary = "names no metric"
        report.checks.append(result)
    for path, head_curve, base_curve in (c for r in readings for c in r.curves):
        base_series = side.saved_curves.get(f"curve {path}")
        if head_curve is None and base_curve is None and base_series is None:
            continue
        report.checks.append(curve_result(path, head_curve, base_curve, base_series))
    report.checks.extend(c for r in readings for c in r.checks)
    if not names and not report.checks and not saved:
        if expected:
            raise UserError(
                f"no metrics yet: none of {', '.join(expected)} exists in {head_dir}"
                f" or at {label}; run the pipeline (e.g. dvc repro) before ci-checks compare"
            )
        raise UserError(
            f"nothing to compare in {head_dir}: no dvc.yaml with metrics, no files under "
            '[tool.ci-checks.compare] (e.g. files = ["metrics/*.json"]), and no --head-results'
        )
    report.subject = {
        "base": side.subject,
        "head": {"ref": "working tree", "sha": repo.head_sha if repo else None},
        "fail_on": fail_on,
        "params_changed": params_changed,
        "first_run": first_run,
    }
    if first_run:
        log(f"no baseline on {side.name} yet: {len(head_metrics)} metrics recorded, nothing to compare")
    else:
        shown = ", ".join(f"{counts[v]} {v}" for v in (v.value for v in Verdict) if counts.get(v))
        sha = side.subject["sha"]
        where = f"{side.subject['ref']} ({str(sha)[:7]})" if sha else side.subject["ref"]
        log(f"working tree vs {where}: {shown or 'no metrics'}")
    return report


def _params_changed(head: Tree, base: Tree, files: list[str]) -> dict[str, dict[str, Any]]:
    """The params that differ between the sides, old and new; only against a git revision."""
    if not isinstance(base, GitTree):
        return {}
    files = list(dict.fromkeys(files))
    old, new = read_params(base, files), read_params(head, files)
    changed: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys([*old, *new]):
        if old.get(key) != new.get(key) or (key in old) != (key in new):
            changed[key] = {"old": old.get(key), "new": new.get(key)}
    return changed
