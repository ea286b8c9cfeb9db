"""compare(): the working tree's metrics against a base revision, assembled into one Report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ci_checks._errors import UserError
from ci_checks.compare import sources
from ci_checks.compare.base import NO_GIT, Base, Repo, find_repo, open_base
from ci_checks.compare.base_policy import EffectivePolicy, effective, from_record, read_config
from ci_checks.compare.files import Metric, per_class, read_params
from ci_checks.compare.gate import assess, choose_gating, correct
from ci_checks.compare.policy import (
    FAIL_ON,
    Policy,
    check_policies,
    closest_metrics,
    policy_for,
    unmatched_any,
    unmatched_message,
    unmatched_optional,
)
from ci_checks.compare.trees import GLOB_CHARS, GitTree, Tree, WorkingTree
from ci_checks.compare.verdicts import curve_result, metric_result
from ci_checks.config import validate_section
from ci_checks.results import Kind, Verdict

if TYPE_CHECKING:
    from ci_checks.results import CheckResult, Report


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
    config_path: str | None = None,
    policy_from: str = "base",
) -> Report:
    """Compare the metrics of head_dir's working tree with a base revision; return a Report (command "compare").

    settings and policies are the working tree's [tool.ci-checks.compare] and [tool.ci-checks.metrics]. With
    config_path (the pyproject.toml they came from) and policy_from "base", the gate is read from that file at
    the base revision instead (ci_checks/compare/base_policy.py); the working tree's only adds files to read.
    """
    from ci_checks.results import CheckResult, Location, Report

    head_settings = validate_section("compare", settings or {}, where="compare settings")
    head_policies = dict(policies or {})
    if fail_on is not None and fail_on not in FAIL_ON:
        raise UserError(f"fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    if policy_from not in ("base", "head"):
        raise UserError(f"policy-from must be base or head, got {policy_from!r}")
    env = os.environ if env is None else env
    log = log or (lambda message: None)
    if (base_results is None) != (head_results is None):
        raise UserError("pass both --base-results and --head-results (train-check results of main and of this change)")
    head_dir = os.path.abspath(head_dir)
    if not os.path.isdir(head_dir):
        raise UserError(f"{head_dir}: no such folder; pass the project folder to --head-dir")

    repo = find_repo(head_dir, hint=NO_GIT)
    head_tree = WorkingTree(head_dir)
    trust_base = policy_from == "base" and config_path is not None

    def open_side(ref: str | None) -> Base:
        return open_base(
            head_dir,
            repo,
            ref,
            fetch_depth=int(head_settings["fetch-depth"]),
            saved_results=base_metrics_json,
            env=env,
            log=log,
        )

    # The pull request's own `base` key would choose its own baseline: with the base's policy, only the base's counts.
    try:
        side = open_side(base if trust_base else base or head_settings.get("base"))
    except UserError:
        if not (trust_base and base is None and head_settings.get("base")):
            raise
        # No default branch to read the policy from: the configured base is the only one there is.
        side = open_side(str(head_settings["base"]))
    policy = _policy(side, repo, config_path if trust_base else None, head_settings, head_policies, policy_from)
    wanted = policy.settings.get("base")
    if trust_base and base is None and wanted and isinstance(side.tree, GitTree) and wanted != side.subject["ref"]:
        side.tree.close()
        side = open_side(str(wanted))
    settings = policy.settings
    policies = policy.policies
    fail_on = fail_on or settings["fail-on"]
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
        # A typo in the working tree's policy is the pull request's to fix: exit 2, whichever policy judges it.
        check_policies(head_policies, names)
    # One in the base's is not (the pull request may be what fixes it): a warning.
    unmatched = unmatched_optional(policies, names) if not policy.from_base else unmatched_any(policies, names)
    saved = side.subject["source"] == "results-json"
    label = f"{side.name} (saved results)" if saved else side.name
    report = Report(command="compare")

    started = time.perf_counter()
    assessments = [
        assess(name, b, h, p, first_run=first_run)
        for name, b, h, p in _expand(names, base_metrics, head_metrics, policies)
    ]
    family = choose_gating(assessments, str(settings["gate"]))
    correct(assessments, str(settings["correction"]))
    per_metric = (time.perf_counter() - started) / max(1, len(assessments))
    counts: dict[str, int] = {}
    for a in assessments:
        started = time.perf_counter()
        result = metric_result(
            a, fail_on=fail_on, label=label, correction=str(settings["correction"]), first_run=first_run
        )
        if repo is not None:
            file = (a.head or a.base or Metric(a.name, "")).file
            if file and not GLOB_CHARS.search(file):
                for finding in result.findings:
                    finding.location = finding.location or Location(repo.prefix + file)
        result.duration_s = per_metric + time.perf_counter() - started
        counts[result.figures["verdict"]] = counts.get(result.figures["verdict"], 0) + 1
        report.checks.append(result)
    report.checks.extend(_policy_results(policy, trust_base))
    for unknown in unmatched:
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
    if not names and not any(c.kind is not Kind.POLICY for c in report.checks) and not saved:
        if expected:
            raise UserError(
                f"no metrics yet: none of {', '.join(expected)} exists in {head_dir}"
                f" or at {label}; run the pipeline (e.g. dvc repro) before ci-checks compare"
            )
        raise UserError(
            f"nothing to compare in {head_dir}: no dvc.yaml with metrics, no files under "
            '[tool.ci-checks.compare] (e.g. files = ["metrics/*.json"]), and no --head-results'
        )
    gating = [a.name for a in assessments if a.gating]
    report.subject = {
        "base": side.subject,
        "head": {"ref": "working tree", "sha": repo.head_sha if repo else None},
        "fail_on": fail_on,
        "params_changed": params_changed,
        "first_run": first_run,
        "gate": {
            "family": family,
            "correction": settings["correction"],
            "gating": gating,
            "metrics": len(assessments),
            "tested": sum(1 for a in assessments if a.measured and a.measured["p_two"] is not None),
            "alpha": sorted({a.policy.alpha for a in assessments if a.gating}) or [0.05],
        },
        "policy": policy.record(),
    }
    if first_run:
        log(f"no baseline on {side.name} yet: {len(head_metrics)} metrics recorded, nothing to compare")
    else:
        shown = ", ".join(f"{counts[v]} {v}" for v in (v.value for v in Verdict) if counts.get(v))
        sha = side.subject["sha"]
        where = f"{side.subject['ref']} ({str(sha)[:7]})" if sha else side.subject["ref"]
        log(
            f"working tree vs {where}: {shown or 'no metrics'}; {len(gating)} of {len(assessments)} metrics gate"
            f" (policy from {policy.source})"
        )
    return report


def _expand(
    names: list[str], base: Mapping[str, Metric], head: Mapping[str, Metric], policies: Mapping[str, Any]
) -> list[tuple[str, Metric | None, Metric | None, Policy]]:
    """Every metric with its policy; per-class ones split into a metric per class, with the parent's policy."""
    out: list[tuple[str, Metric | None, Metric | None, Policy]] = []
    for name in names:
        policy = policy_for(name, policies)
        b, h = base.get(name), head.get(name)
        if policy.values == "per-class":
            split_b = per_class(b) if b is not None else None
            split_h = per_class(h) if h is not None else None
            if split_b is not None or split_h is not None:
                children_b = split_b if split_b is not None else ({name: b} if b is not None else {})
                children_h = split_h if split_h is not None else ({name: h} if h is not None else {})
                for child in dict.fromkeys([*children_b, *children_h]):
                    out.append((child, children_b.get(child), children_h.get(child), policy))
                continue
        out.append((name, b, h, policy))
    return out


def _policy(
    side: Base,
    repo: Repo | None,
    config_path: str | None,
    head_settings: Mapping[str, Any],
    head_policies: Mapping[str, Any],
    policy_from: str,
) -> EffectivePolicy:
    """The policy that judges this run: the base revision's, the saved results', or (else) the working tree's."""

    def own(source: str, note: str | None = None) -> EffectivePolicy:
        return EffectivePolicy(dict(head_settings), dict(head_policies), source, note=note)

    if config_path is None:
        return own("the working tree" if policy_from == "head" else "the given settings")
    if side.subject["source"] == "results-json":
        if side.saved_policy is None:
            return own(
                "the working tree",
                "the saved results record no policy (written by an older ci-checks): the working tree's decides; "
                "regenerate them on main",
            )
        return from_record(side.saved_policy, head_settings, head_policies)
    if not isinstance(side.tree, GitTree) or repo is None:
        return own("the working tree", "no base revision yet")
    rel = os.path.relpath(os.path.abspath(config_path), repo.toplevel).replace(os.sep, "/")
    if rel.startswith("../"):
        return own("the working tree", f"{config_path} is outside the repository, so the base has no version of it")
    source = f"{side.name} ({side.tree.rev[:7]})"
    tree = GitTree(repo.toplevel, side.tree.rev, "", label=source)
    note = None
    try:
        config = read_config(tree, rel, f"{rel} at {source}") or {}
    except UserError as e:
        config, note = (
            {},
            f"the base's configuration is not valid for this version of ci-checks ({e}): the defaults decide",
        )
    finally:
        tree.close()
    base_settings = validate_section("compare", config.get("compare") or {})
    return effective(base_settings, config.get("metrics") or {}, head_settings, head_policies, source=source, note=note)


def _policy_results(policy: EffectivePolicy, trusted: bool) -> list[CheckResult]:
    """A warning when the pull request changes the policy (it applies after merge), or the base's was unusable."""
    from ci_checks.results import CheckResult

    if not trusted or not (policy.changes or policy.note):
        return []
    result = CheckResult(
        "policy changes",
        figures={"kind": Kind.POLICY.value, "source": policy.source, "changes": policy.changes, "note": policy.note},
    )
    if policy.changes:
        shown = "; ".join(f"{c['key']}: {_value(c['base'])} -> {_value(c['head'])}" for c in policy.changes[:5])
        more = f" and {len(policy.changes) - 5} more" if len(policy.changes) > 5 else ""
        result.summary = f"{len(policy.changes)} change(s), applied after merge"
        result.add(
            "warning",
            f"this pull request changes the compare policy ({shown}{more}); {policy.source}'s policy judges it, and "
            "the change applies once it is merged (ci-checks compare --policy-from head tries it locally)",
            reason="policy-changed",
        )
    if policy.note:
        result.summary = result.summary or "policy from the working tree"
        result.add("warning" if "not valid" in policy.note else "notice", policy.note, reason="policy-source")
    return [result]


def _value(value: Any) -> str:
    return "not set" if value is None else json.dumps(value)


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
