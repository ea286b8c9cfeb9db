"""The ML Test Score scorecard: which of the rubric's 28 tests the repository's CI performs, and its score.

Scoring follows the paper: a test scores 1 when a system runs it automatically (here: a workflow runs the command
that performs it), 0.5 when the team runs it by hand and documents the results ([tool.ci-checks.score] manual,
with the document), else 0. Each section's score is the sum of its tests; the overall score is the lowest section.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_checks.results import CheckResult, Report
from ci_checks.scorecard.rubric import BY_ID, PAPER, SECTION_TITLES, SECTIONS, TESTS, Test
from ci_checks.scorecard.scan import Scan, Tree, Use, scan

__all__ = ["Item", "Scorecard", "score", "to_report", "render_table", "report_lines", "PAPER"]

AUTOMATED, MANUAL, MISSING = "automated", "manual", "missing"
POINTS = {AUTOMATED: 1.0, MANUAL: 0.5, MISSING: 0.0}
PERFORMANCE_WORDS = {"ms", "latency", "throughput", "memory", "mb", "gb", "mib", "gib", "fps", "qps", "seconds", "sec"}
CHECK = "ml-test-score"


@dataclass
class Item:
    test: Test
    status: str = MISSING
    covered_by: list[str] = field(default_factory=list)  # "ci-checks compare in .github/workflows/ci.yml (job x)"
    note: str = ""

    @property
    def points(self) -> float:
        return POINTS[self.status]


@dataclass
class Scorecard:
    items: list[Item]
    hooks: list[str] = field(default_factory=list)

    def section(self, name: str) -> float:
        return sum(i.points for i in self.items if i.test.id.startswith(name + "-"))

    @property
    def sections(self) -> dict[str, float]:
        return {s: self.section(s) for s in SECTIONS}

    @property
    def overall(self) -> float:
        return min(self.sections.values())


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}


def _enabled(check: str, config: Mapping[str, Any]) -> bool:
    """Whether train-check runs this check under [tool.ci-checks] checks/skip."""
    chosen = config.get("checks")
    skipped = config.get("skip") or []
    return (not isinstance(chosen, list) or check in chosen) and not (isinstance(skipped, list) and check in skipped)


def has_params(tree: Tree, config: Mapping[str, Any], project: str) -> bool:
    """Whether the model's hyperparameters live in a reviewed file: a params file compare diffs, or dvc.yaml params."""
    compare = config.get("compare")
    listed = compare.get("params") if isinstance(compare, Mapping) else None
    names = [listed] if isinstance(listed, str) else [str(p) for p in listed] if isinstance(listed, list) else []
    prefix = f"{project}/" if project else ""
    if any(tree.read(prefix + name) is not None for name in names or ["params.yaml"]):
        return True
    dvc_yaml = tree.read(prefix + "dvc.yaml")
    return dvc_yaml is not None and re.search(r"(?m)^\s+params:", dvc_yaml) is not None


def _qualifies(test: Test, use: Use, config: Mapping[str, Any], facts: Mapping[str, bool]) -> bool:
    if test.needs in facts:
        return facts[test.needs]
    if test.needs == "schedule":
        return use.scheduled
    if test.needs in ("reproducibility", "finite-values") and use.command == "train-check":
        return _enabled(test.needs, config)
    if test.needs == "performance-metric":
        metrics = config.get("metrics")
        names = list(metrics) if isinstance(metrics, Mapping) else []
        return any(_words(n) & PERFORMANCE_WORDS for n in names)
    return True


# What shows a command is set up in [tool.ci-checks]: its table and the key that must be set.
CONFIGURED = {
    "golden": ("golden", "suites"),
    "quality": ("quality", "spec"),
    "data-check": ("data", "datasets"),
    "rerun": ("rerun", "runs"),
    "rollback": ("rollback", "artifact"),
}


def _configured(command: str, config: Mapping[str, Any]) -> bool:
    table, key = CONFIGURED.get(command, ("", ""))
    section = config.get(table) if table else None
    return isinstance(section, Mapping) and bool(section.get(key))


def _why_not(test: Test, uses: list[Use], config: Mapping[str, Any]) -> str:
    if not test.commands:
        return test.how
    if not uses:
        kit = [c for c in test.commands if c not in ("dependency-updates", "dvc repro")]
        ready = [c for c in kit if _configured(c, config)]
        hint = f" ({', '.join(ready)} is set up in [tool.ci-checks]: only a workflow is missing)" if ready else ""
        return ("no workflow runs " + " or ".join(kit) + hint + ": " if kit else "") + test.how
    if test.needs == "schedule":
        return f"{uses[0].command} runs, but in no scheduled workflow: {test.how}"
    if test.needs == "performance-metric":
        return "compare runs, but no metric policy names a latency, throughput or memory metric: " + test.how
    if test.needs == "params":
        return (
            "compare runs, but the hyperparameters are in no params file it diffs (params.yaml, dvc.yaml): " + test.how
        )
    return f"{uses[0].command} runs with the {test.needs} check left out: {test.how}"


def _describe(use: Use) -> str:
    command = use.command if use.command in ("dependency-updates", "dvc repro") else f"ci-checks {use.command}"
    if use.command == "pytest":
        command = "pytest"
    if use.command == "dependency-updates":
        return f"{use.how} ({use.file})"
    return f"{command} in {use.where()}"


def score(
    tree: Tree,
    config: Mapping[str, Any],
    *,
    project: str = "",
    manual: Mapping[str, str] | None = None,
    found: Scan | None = None,
) -> Scorecard:
    """Score the repository: tree is its files (working tree or a revision), config the [tool.ci-checks] of the
    project in its folder `project` (relative to the top, "" at the top)."""
    scanned = found if found is not None else scan(tree)
    declared = manual or {}
    facts = {"params": has_params(tree, config, project)}
    items = []
    for test in TESTS:
        item = Item(test)
        uses = [u for c in test.commands for u in scanned.running(c)]
        good = [u for u in uses if _qualifies(test, u, config, facts)]
        if good:
            item.status = AUTOMATED
            first = {(u.command, u.file, u.job): u for u in reversed(good)}  # one line per command and job
            item.covered_by = list(dict.fromkeys(_describe(u) for u in good if first[(u.command, u.file, u.job)] is u))
        elif test.id in declared:
            item.status = MANUAL
            item.covered_by = [f"run by hand, results in {declared[test.id]}"]
        else:
            item.note = _why_not(test, uses, config)
        items.append(item)
    return Scorecard(items, hooks=scanned.hooks)


def _fmt(points: float) -> str:
    return f"{points:g}"


def _signed(delta: float) -> str:
    return f"{delta:+g}"


def to_report(card: Scorecard, *, subject: Mapping[str, Any], base: Scorecard | None = None) -> Report:
    """The results document: one check holding the scorecard (its figures), its score and the change against base."""
    result = CheckResult(CHECK)
    sections = {k: v for k, v in card.sections.items()}
    result.figures.update(
        score=card.overall,
        sections=sections,
        tests=[
            {
                "id": i.test.id,
                "name": i.test.name,
                "status": i.status,
                "points": i.points,
                "covered_by": i.covered_by,
                "missing": i.note,
            }
            for i in card.items
        ],
        hooks=card.hooks,
        rubric=PAPER,
    )
    automated = sum(1 for i in card.items if i.status == AUTOMATED)
    manual = sum(1 for i in card.items if i.status == MANUAL)
    result.summary = (
        f"ML Test Score {_fmt(card.overall)} (lowest section; "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in sections.items())
        + f"): {automated} of {len(card.items)} tests automated, {manual} manual"
    )
    if base is not None:
        result.figures["base_score"] = base.overall
        result.figures["base_sections"] = base.sections
        result.figures["change"] = card.overall - base.overall
        before = {i.test.id: i.status for i in base.items}
        result.figures["gained"] = [i.test.id for i in card.items if i.points > POINTS[before[i.test.id]]]
        result.figures["lost"] = [i.test.id for i in card.items if i.points < POINTS[before[i.test.id]]]
        result.summary += f"; base {_fmt(base.overall)} ({_signed(card.overall - base.overall)})"
    return Report("score", checks=[result], subject=dict(subject))


def render_table(card: Scorecard, *, base: Scorecard | None = None) -> str:
    """The scorecard as a text table: one line per test, its points and what covers it or what is missing."""
    from ci_checks.render import plain

    width = max(len(t.name) for t in TESTS)
    lines = []
    for section in SECTIONS:
        lines.append(f"{SECTION_TITLES[section]}: {_fmt(card.section(section))} of 7")
        for item in card.items:
            if not item.test.id.startswith(section + "-"):
                continue
            mark = {AUTOMATED: "AUTO", MANUAL: "HAND", MISSING: "----"}[item.status]
            more = f" and {len(item.covered_by) - 2} more" if len(item.covered_by) > 2 else ""
            # file names and job ids come from the repository: one line each, so none can forge a workflow command
            why = plain("; ".join(item.covered_by[:2]) + more if item.covered_by else f"missing: {item.note}")
            lines.append(f"  {mark}  {_fmt(item.points):<3} {item.test.id:<16} {item.test.name:<{width}}  {why}")
        lines.append("")
    change = ""
    if base is not None:
        delta = card.overall - base.overall
        change = f"; base {_fmt(base.overall)}, change {_signed(delta)}"
    sections = ", ".join(f"{k} {_fmt(v)}" for k, v in card.sections.items())
    lines.append(f"score: ML Test Score {_fmt(card.overall)} (the lowest section: {sections}){change}")
    return "\n".join(lines) + "\n"


def report_lines(reports: Sequence[Report]) -> list[str]:
    """A line for ci-checks report: the score, its sections and its change against the base; [] without one."""
    from ci_checks.render import md_text

    for r in reports:
        if r.command != "score":
            continue
        for c in r.checks:
            if c.check != CHECK or not isinstance(c.figures.get("score"), (int, float)):
                continue
            sections = c.figures.get("sections")
            parts = (
                ", ".join(f"{md_text(str(k))} {_fmt(float(v))}" for k, v in sections.items() if _number(v))
                if isinstance(sections, Mapping)
                else ""
            )
            line = f"**ML Test Score**: {_fmt(float(c.figures['score']))}" + (f" ({parts})" if parts else "")
            if _number(c.figures.get("base_score")):
                delta = float(c.figures["score"]) - float(c.figures["base_score"])
                line += f", base {_fmt(float(c.figures['base_score']))} ({_signed(delta)})"
            for key, word in (("gained", "newly covered"), ("lost", "no longer covered")):
                ids = [str(i) for i in c.figures.get(key) or [] if str(i) in BY_ID]
                if ids:
                    line += f"; {word}: " + ", ".join(md_text(BY_ID[i].name) for i in ids[:5])
            return [line, ""]
    return []


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
