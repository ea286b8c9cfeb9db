"""report: merge the JSON results of every check into one Markdown document for the PR comment."""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ci_checks._errors import UserError
from ci_checks.checks.memorization import NAME as MEMORIZATION
from ci_checks.github import GITHUB_COMMENT_LIMIT
from ci_checks.render import STATUS_ICONS, md_code, md_text, plain
from ci_checks.results import CheckResult, Finding, Kind, MetricComparison, Report, Verdict, load_report

HELP = "merge results JSON files into one Markdown report (PR comment, step summary), with plots"
MERMAID_POINTS = 60
SPARK_POINTS = 24
NAME_LIMIT = 72  # longer names are cut in tables and headlines; the full name is in "Full names"
ALWAYS_SHOWN = 12  # with more metrics than this, those within noise or unchanged fold into a collapsed table
PALETTE = ("#8c959f", "#0969da")  # main grey, PR blue: GitHub's own, apart in light and dark mode alike

VERDICT_ICONS = {
    Verdict.IMPROVED: ":green_circle: improved",
    Verdict.UNCHANGED: ":white_circle: unchanged",
    Verdict.WITHIN_NOISE: ":white_circle: within noise",
    Verdict.REGRESSED: ":red_circle: regressed",
    Verdict.MISSING: ":warning: missing",
    Verdict.NEW: ":new: new",
    Verdict.INVALID: ":warning: invalid",
    Verdict.CHANGED: ":large_blue_circle: changed",
    Verdict.SKIPPED: ":fast_forward: skipped",
}
DIRECTION_SHOWN = {"higher": "\u2191", "lower": "\u2193", "unknown": "? unknown"}

# What makes a report fail or warn, by the reason compare records on each finding: how the headline counts them.
REASONS = {
    "regressed": "metric(s) regressed",
    "nonfinite": "metric(s) NaN or infinite",
    "invalid": "metric(s) not a number",
    "missing": "metric(s) missing",
    "regressed-report-only": "report-only metric(s) regressed",
    "diverged": "metric(s) with a diverged seed",
    "direction-unknown": "metric(s) changed with no known direction",
    "policy-changed": "change(s) to the compare policy (they apply after merge)",
    "policy-source": "problem(s) with the base branch's policy",
    "expectation": "dataset(s) failing expectations",
    "drift": "dataset(s) drifted from the base",
    "size": "dataset(s) changed size",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS.json",
        help="results files written with --format json --output (train-check, compare, ...)",
    )
    parser.add_argument("--output", metavar="FILE", help="write the Markdown here (default: stdout)")
    parser.add_argument("--title", default="ci-checks report", help="heading of the report (default: %(default)s)")
    parser.add_argument(
        "--plots-dir",
        metavar="DIR",
        help="also render PR-vs-main curves as PNG files into DIR "
        "(needs matplotlib: pip install 'ci-checks[report]'; default: no PNG)",
    )
    parser.add_argument(
        "--embed-images",
        action="store_true",
        help="reference the PNGs from the Markdown, for "
        "posting tools that upload images (default: off; Mermaid charts need no image hosting)",
    )
    parser.add_argument(
        "--max-chars",
        type=int,
        default=GITHUB_COMMENT_LIMIT - 200,
        help="trim details until the report fits (default: %(default)s, under GitHub's 65,536 limit "
        "with room for the comment marker)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip results files that do not exist (a job that did not run) instead of exit 2",
    )


def run(args: argparse.Namespace) -> int:
    reports = []
    for path in args.results:
        if args.allow_missing and not os.path.exists(path):
            print(f"ci-checks report: {path} not found, skipped", file=sys.stderr)
            continue
        reports.append(load_report(path))
    if not reports:
        raise UserError("no results to report: every results file was missing; check the jobs that write them")
    if args.max_chars is not None and args.max_chars < MIN_CHARS:
        raise UserError(f"--max-chars must be at least {MIN_CHARS} (a headline and a table), got {args.max_chars}")
    images: dict[str, str] = {}
    if args.plots_dir:
        try:
            images = render_pngs(reports, args.plots_dir)
            from ci_checks.data.report import render_pngs as data_pngs

            images.update(data_pngs(reports, args.plots_dir))
        except OSError as e:
            raise UserError(f"--plots-dir {args.plots_dir}: cannot write the charts there ({e.strerror})") from None
    markdown = render(reports, title=args.title, max_chars=args.max_chars, images=images if args.embed_images else {})
    if args.output:
        from ci_checks._io import write_text

        try:
            write_text(args.output, markdown)
        except OSError as e:
            raise UserError(f"{args.output}: cannot write the report ({e.strerror})") from None
    else:
        sys.stdout.write(markdown)
    status = worst(reports)
    for variable, text in (
        ("GITHUB_STEP_SUMMARY", markdown),
        ("GITHUB_OUTPUT", f"status={status}\n" + (f"report={args.output}\n" if args.output else "")),
    ):
        target = os.environ.get(variable)
        if not target:
            continue
        try:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as e:
            raise UserError(f"{variable}={target}: cannot append to it ({e.strerror})") from None
    return 0


MIN_CHARS = 1000  # the smallest report budget that still holds a headline and a table


def worst(reports: Sequence[Report]) -> str:
    from ci_checks.results import merge_statuses

    return merge_statuses([r.status for r in reports])


# ---------------------------------------------------------------- rendering


def _metrics(checks: Sequence[CheckResult]) -> list[tuple[CheckResult, MetricComparison]]:
    return [(c, m) for c in checks if (m := c.metric) is not None]


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.4g}"
    return str(x)


def _change(m: MetricComparison) -> str:
    if m.delta is None:
        return "–"
    text = f"{m.delta:+.4g}"
    if m.relative is not None and math.isfinite(m.relative):
        text += f" ({m.relative * 100:+.1f}%)"
    return text


def _evidence(m: MetricComparison) -> str:
    adjusted = f", adj. {m.p_adjusted:.2g}" if m.p_adjusted is not None else ""
    if m.p_value is not None and m.verdict is not Verdict.UNCHANGED:
        return f" (p={m.p_value:.2g}{adjusted})"
    if m.ci is not None:
        return f" (CI {m.ci[0]:+.3g}..{m.ci[1]:+.3g}{adjusted})"
    return ""


def _verdict_cell(c: CheckResult, m: MetricComparison) -> str:
    text = VERDICT_ICONS[m.verdict]
    if m.verdict is Verdict.REGRESSED and not m.gating:
        text = ":orange_circle: regressed (report-only)"
    elif m.verdict is Verdict.CHANGED and m.direction == "unknown":
        text += " (direction unknown)"
    if any(f.details.get("reason") == "diverged" for f in c.findings):
        text += ", :warning: diverged seed"
    return text + _evidence(m)


def _direction_cell(m: MetricComparison) -> str:
    shown = DIRECTION_SHOWN.get(m.direction or "", "–")
    return f"{shown} guessed" if m.direction_guessed and m.direction in ("higher", "lower") else shown


# ---------------------------------------------------------------- the headline

_INFERRED = {Verdict.REGRESSED: "regressed", Verdict.MISSING: "missing", Verdict.INVALID: "invalid"}


def _groups(reports: Sequence[Report], severity: str) -> list[tuple[str, list[tuple[CheckResult, Finding]]]]:
    """Findings of one severity grouped by what they are (compare's reason, else "check"), in a fixed order."""
    groups: dict[str, list[tuple[CheckResult, Finding]]] = {}
    for r in reports:
        for c in r.checks:
            for f in c.findings if not c.skipped else []:
                if f.severity == severity:
                    reason = f.details.get("reason")
                    if not isinstance(reason, str) and c.metric is not None:  # results of an older ci-checks
                        reason = _INFERRED.get(c.metric.verdict)
                    key = reason if isinstance(reason, str) and reason in REASONS else "check"
                    groups.setdefault(key, []).append((c, f))
    order = [*REASONS, "check"]
    return sorted(groups.items(), key=lambda kv: order.index(kv[0]))


def _group_text(reason: str, items: list[tuple[CheckResult, Finding]], severity: str) -> str:
    names = list(dict.fromkeys(c.check for c, _ in items))
    if reason == "check":
        shown = ", ".join(md_code(n, limit=40) for n in names[:3])
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        verb = "failed" if severity == "error" else "warned"
        return f"{len(names)} check(s) {verb}: {shown}{more}"
    noun = REASONS[reason]
    if reason == "missing" and severity == "error":
        noun = "gating metric(s) missing"
    first, _ = items[0]
    example = md_code(first.check, limit=60)
    m = first.metric
    if reason in ("regressed", "regressed-report-only", "direction-unknown") and m is not None:
        example += f" {_fmt(m.base)} → {_fmt(m.head)}"
    elif reason in ("nonfinite", "invalid") and m is not None and m.base is not None:
        example += f" (was {_fmt(m.base)})"
    if reason.startswith("policy"):
        return f"{len(items)} {noun}"
    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
    return f"{len(names)} {noun}: {example}{more}"


def headline(reports: Sequence[Report]) -> str:
    """One line: the verdict a reviewer reads first. It names every reason for the status, and only those."""
    status = worst(reports)
    icon = STATUS_ICONS[status]
    metrics = _metrics([c for r in reports for c in r.checks])
    first_run = any(r.subject.get("first_run") for r in reports if r.command == "compare")
    errors = [_group_text(k, v, "error") for k, v in _groups(reports, "error")]
    warnings = [_group_text(k, v, "warning") for k, v in _groups(reports, "warning")]
    if errors:
        also = f"; also {'; '.join(warnings)}" if warnings else ""
        return f"{icon} **{'; '.join(errors)}**{also}"
    if first_run and not warnings:
        return (
            f":information_source: **No baseline on main yet**: {len(metrics)} metric(s) recorded, nothing to "
            "compare. Later pull requests will be compared with this."
        )
    if warnings:
        lead = "No gating regressions, but " if metrics and not first_run else ""
        return f"{icon} **{lead}{'; '.join(warnings)}**" + (" (no baseline on main yet)" if first_run else "")
    improved = sum(1 for _, m in metrics if m.verdict is Verdict.IMPROVED)
    bits = []
    if metrics:
        gating = sum(1 for _, m in metrics if m.gating)
        gate = f" ({gating} gating)" if 0 < gating < len(metrics) else ""
        bits.append(
            f"{len(metrics)} metric(s) compared with main{gate}" + (f", {improved} improved" if improved else "")
        )
    checks = sum(1 for r in reports if r.command != "compare" for c in r.checks)
    if checks:
        bits.append(f"{checks} check(s) passed" if status == "pass" else f"{checks} check(s) ran")
    return f"{icon} **No regressions**: " + "; ".join(bits) if bits else f"{icon} **Nothing to report**"


# ---------------------------------------------------------------- sections


def _gate_line(r: Report, metrics: list[tuple[CheckResult, MetricComparison]]) -> str:
    gate = r.subject.get("gate") if isinstance(r.subject.get("gate"), dict) else None
    policy: dict[str, Any] = r.subject["policy"] if isinstance(r.subject.get("policy"), dict) else {}
    source = f" Policy from {md_code(policy['source'])}." if isinstance(policy.get("source"), str) else ""
    if not gate or not metrics:
        return ""
    n, gating = len(metrics), sum(1 for _, m in metrics if m.gating)
    alphas = gate.get("alpha") or [0.05]
    alpha = "/".join(f"{a:g}" for a in alphas) if isinstance(alphas, list) else str(alphas)
    if gate.get("correction") == "none":
        how = f"each judged alone at its alpha ({alpha}; correction = none: more metrics, more false failures)"
    else:
        how = f"judged together: Holm at {alpha} over those with seeds"
    if gating == n:
        who = f"All {n} metrics gate this pull request" + (" (none is declared)" if gate.get("family") == "all" else "")
    elif gating == 0:
        who = f"No metric gates this pull request (gate = {gate.get('family')}, none declared with required = true)"
        how = ""
    else:
        who = f"{gating} of {n} metrics gate this pull request (declared with required = true)"
        how += f"; the other {n - gating} are report-only (Benjamini-Hochberg)"
    return f"**Gate**: {who}{', ' + how if how else ''}.{source}"


def _row(c: CheckResult, m: MetricComparison, with_gate: bool, long_names: dict[str, str]) -> str:
    n = len(m.head_samples)
    seeds = f" ×{n}" if n > 1 else ""
    name = md_code(c.check, table=True, limit=NAME_LIMIT)
    if len(c.check) > NAME_LIMIT or any(ch in c.check for ch in "\n\r"):
        long_names[name] = c.check
    cells = [name, _fmt(m.base), f"{_fmt(m.head)}{seeds}", _change(m), _verdict_cell(c, m), _direction_cell(m)]
    if with_gate:
        cells.append("yes" if m.gating else "")
    return "| " + " | ".join(cells) + " |"


def _table(rows: list[tuple[CheckResult, MetricComparison]], with_gate: bool, long_names: dict[str, str]) -> list[str]:
    header = "| metric | main | PR | change | verdict | better |" + (" gates |" if with_gate else "")
    rule = "|---|---:|---:|---:|---|---|" + ("---|" if with_gate else "")
    return [header, rule, *(_row(c, m, with_gate, long_names) for c, m in rows), ""]


def _attention(c: CheckResult, m: MetricComparison) -> bool:
    quiet = (Verdict.WITHIN_NOISE, Verdict.UNCHANGED, Verdict.SKIPPED)
    return m.verdict not in quiet or any(f.severity in ("error", "warning") for f in c.findings)


def _metrics_section(reports: Sequence[Report]) -> tuple[list[str], list[str], dict[str, str]]:
    """The metrics that need a look, the others (collapsed), and the full names of those cut."""
    lines: list[str] = []
    folded: list[str] = []
    long_names: dict[str, str] = {}
    for r in reports:
        metrics = _metrics(r.checks)
        training = [c for c in r.checks if c.kind is Kind.TRAINING]
        if not metrics and not training:
            continue
        base = r.subject.get("base", {}) if isinstance(r.subject.get("base"), dict) else {}
        ref = str(base.get("ref") or "main")
        sha = str(base.get("sha") or "")[:7]
        lines += [f"### Metrics vs {md_code(ref)}" + (f" ({md_text(sha)})" if sha else ""), ""]
        gate_line = _gate_line(r, metrics)
        if gate_line:
            lines += [gate_line, ""]
        if metrics:
            metrics.sort(key=lambda cm: (cm[1].verdict.rank, not cm[1].gating))
            with_gate = 0 < sum(1 for _, m in metrics if m.gating) < len(metrics)
            fold = len(metrics) > ALWAYS_SHOWN
            shown = [cm for cm in metrics if not fold or _attention(*cm)]
            rest = [cm for cm in metrics if fold and not _attention(*cm)]
            if shown:
                lines += _table(shown, with_gate, long_names)
            if rest:
                folded += [
                    f"<details><summary>{len(rest)} more metric(s) within noise, unchanged or skipped</summary>",
                    "",
                    *_table(rest, with_gate, long_names),
                    "</details>",
                    "",
                ]
        for c in training:
            icon = STATUS_ICONS[c.status]
            lines += [f"{icon} {md_text(c.summary or c.check)}", ""]
    return lines, folded, long_names


def _long_names_section(long_names: dict[str, str]) -> list[str]:
    if not long_names:
        return []
    lines = [f"<details><summary>Full names ({len(long_names)})</summary>", ""]
    lines += [f"- {short}: {md_code(full)}" for short, full in long_names.items()]
    return lines + ["", "</details>", ""]


def _policy_section(reports: Sequence[Report]) -> list[str]:
    lines: list[str] = []
    for r in reports:
        for c in r.checks:
            changes = c.figures.get("changes") if c.kind is Kind.POLICY else None
            if not isinstance(changes, list) or not changes:
                continue
            source = md_code(str(c.figures.get("source") or "the base branch"))
            lines += [
                f"### Policy changes: they apply after merge; {source}'s policy judged this pull request",
                "",
                "| key | base | this pull request |",
                "|---|---|---|",
            ]
            for change in changes:
                if isinstance(change, dict):
                    cells = [change.get("key"), change.get("base"), change.get("head")]
                    shown = [md_code(cells[0], table=True, limit=NAME_LIMIT)] + [
                        "not set" if v is None else md_code(json.dumps(v), table=True, limit=NAME_LIMIT)
                        for v in cells[1:]
                    ]
                    lines.append("| " + " | ".join(shown) + " |")
            lines.append("")
    return lines


def _checks_section(reports: Sequence[Report]) -> list[str]:
    lines: list[str] = []
    for r in reports:
        # A metric whose verdict this version does not know is listed as a check, never dropped.
        checks = [
            c
            for c in r.checks
            if c.kind in (Kind.CHECK, Kind.RERUN)
            or c.kind is Kind.POLICY
            and "changes" not in c.figures
            or c.kind is Kind.METRIC
            and not c.metric
        ]
        if not checks:
            continue
        lines += [f"### {md_text(r.command)}", "", "| check | status | summary |", "|---|---|---|"]
        for c in checks:
            name = md_code(c.check, table=True, limit=NAME_LIMIT)
            lines.append(f"| {name} | {STATUS_ICONS[c.status]} {c.status} | {md_text(c.summary)} |")
        lines.append("")
    return lines


def _params_section(reports: Sequence[Report]) -> list[str]:
    changed: dict[str, Any] = {}
    for r in reports:
        value = r.subject.get("params_changed")
        if isinstance(value, dict):
            changed.update(value)
    if not changed:
        return []
    lines = [
        f"<details><summary>Params changed ({len(changed)})</summary>",
        "",
        "| param | main | PR |",
        "|---|---|---|",
    ]
    for name, diff in sorted(changed.items()):
        old = diff.get("old") if isinstance(diff, dict) else None
        new = diff.get("new") if isinstance(diff, dict) else diff
        cells = [md_code(v, table=True, limit=NAME_LIMIT) if v is not None else "–" for v in (name, old, new)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", "</details>", ""]


def _details_section(reports: Sequence[Report]) -> list[str]:
    findings = [(r.command, f) for r in reports for c in r.checks for f in c.findings]
    if not findings:
        return []
    lines = [f"<details><summary>Details ({len(findings)} finding(s))</summary>", ""]
    for command, f in findings:
        where = f" {md_code(f.location, limit=NAME_LIMIT)}" if f.location else ""
        check = md_code(f.check, limit=NAME_LIMIT)
        lines.append(f"- **{md_text(command)}** / {check} ({f.severity}){where}: {md_text(f.message)}")
    return lines + ["", "</details>", ""]


# ---------------------------------------------------------------- curves


@dataclass(frozen=True)
class Chart:
    """One curve, main vs PR: its title, the name of its x, and (x, y) points per side ("base", "head")."""

    title: str
    x: str
    sides: dict[str, tuple[list[float], list[float]]]


def curves(reports: Sequence[Report]) -> list[Chart]:
    """PR-vs-main curves: compare's curve results (x in the curve's own units), and train-check's loss by step."""
    out: list[Chart] = []
    for r in reports:
        for c in r.checks:
            if c.kind is Kind.CURVE:
                x = str(c.figures.get("x") or "step")
                ys = c.figures.get("y") or []
                for y in ys if isinstance(ys, list) else [ys]:
                    sides = {}
                    for side in ("base", "head"):
                        values = c.series.get(f"{side}:{y}")
                        if values:
                            xs = c.series.get(f"{side}:{x}") or list(range(len(values)))
                            sides[side] = ([float(v) for v in xs], [float(v) for v in values])
                    if sides:
                        out.append(Chart(f"{c.check.removeprefix('curve ')}: {y}", x, sides))
            elif r.command == "train-check" and c.check == MEMORIZATION and c.series.get("loss"):
                loss = [float(v) for v in c.series["loss"]]
                out.append(Chart("memorization loss", "step", {"head": (list(map(float, range(len(loss)))), loss)}))
    return out


def _points(xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
    return sorted((x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y))


def _interpolate(points: list[tuple[float, float]], at: float) -> float:
    i = bisect.bisect_left(points, (at, -math.inf))
    if i <= 0:
        return points[0][1]
    if i >= len(points):
        return points[-1][1]
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (at - x0) / (x1 - x0)


def resample(chart: Chart, n: int) -> tuple[list[float], dict[str, list[float]], str]:
    """Both sides on one grid of n x values where both have points (linear interpolation), and a note of what
    the grid leaves out; a side alone keeps its own range."""
    pts = {side: _points(*xy) for side, xy in chart.sides.items()}
    pts = {side: p for side, p in pts.items() if p}
    if not pts:
        return [], {}, ""
    lo = max(p[0][0] for p in pts.values())
    hi = min(p[-1][0] for p in pts.values())
    note = ""
    if len(pts) > 1:
        ends = {side: (p[0][0], p[-1][0]) for side, p in pts.items()}
        if hi <= lo:
            return [], {}, "main and PR share no range of " + chart.x
        if len({e for e in ends.values()}) > 1:
            shown = ", ".join(f"{_LABEL[s]} {a:g}–{b:g}" for s, (a, b) in ends.items())
            note = f"chart: {chart.x} {lo:g}–{hi:g}, where both have points ({shown})"
    if hi == lo:
        grid = [lo]
    else:
        grid = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    return grid, {side: [_interpolate(p, g) for g in grid] for side, p in pts.items()}, note


_LABEL = {"base": "main", "head": "PR"}
_SPARKS = "▁▂▃▄▅▆▇█"
_MERMAID_SAFE = re.compile(r"[^A-Za-z0-9 _.,:;/()%+=-]")


def _mermaid_text(text: str) -> str:
    """Text inside a Mermaid block: no quote, bracket, backtick, newline or markup can get through."""
    return _MERMAID_SAFE.sub("_", text)[:80].strip() or "value"


def sparkline(values: list[float], lo: float, hi: float) -> str:
    span = hi - lo
    return "".join(_SPARKS[min(7, int((v - lo) / span * 8)) if span > 0 else 3] for v in values)


def chart_summary(chart: Chart) -> str:
    """The curve in words and a sparkline per side: what a mail notification (no Mermaid) shows."""
    _, spark, _ = resample(chart, SPARK_POINTS)
    pts = {side: _points(*xy) for side, xy in chart.sides.items()}
    values = [v for s in spark.values() for v in s]
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    parts = []
    for side in ("base", "head"):
        p = pts.get(side)
        if not p:
            continue
        line = f"{_LABEL[side]} `{sparkline(spark[side], lo, hi)}` " if side in spark else f"{_LABEL[side]} "
        best = min(v for _, v in p)
        parts.append(
            f"{line}{p[0][1]:.4g} → {p[-1][1]:.4g} (min {best:.4g}, {md_text(chart.x)} {p[0][0]:g}–{p[-1][0]:g})"
        )
    return " · ".join(parts)


def mermaid_chart(chart: Chart) -> str:
    """An inline xychart-beta that GitHub renders natively (no image host sees private data): x in the curve's own
    units, main grey and PR blue (Mermaid's xychart has no legend: the line above the chart is the legend)."""
    grid, series, note = resample(chart, MERMAID_POINTS)
    if len(grid) < 2:
        return ""
    values = [v for s in series.values() for v in s]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    colors = ", ".join(PALETTE[i] for i, side in enumerate(("base", "head")) if side in series)
    init = json.dumps({"themeVariables": {"xyChart": {"plotColorPalette": colors}}})
    out = [
        "```mermaid",
        f"%%{{init: {init}}}%%",
        "xychart-beta",
        f'    title "{_mermaid_text(chart.title)}"',
        f'    x-axis "{_mermaid_text(chart.x)}" {grid[0]:.6g} --> {grid[-1]:.6g}',
        f'    y-axis "{_mermaid_text(chart.title.rpartition(": ")[2])}" {lo - pad:.4g} --> {hi + pad:.4g}',
    ]
    for side in ("base", "head"):
        if side in series:
            color = "grey" if side == "base" else "blue"
            out.append(f"%% {_LABEL[side]}: the {color} line")
            out.append("    line [" + ", ".join(f"{v:.4g}" for v in series[side]) + "]")
    out.append("```")
    return "\n".join(out) + (f"\n\n_{md_text(note)}_" if note else "")


def _legend(chart: Chart) -> str:
    sides = [s for s in ("base", "head") if s in chart.sides]
    colors = {"base": "grey", "head": "blue"}
    return ", ".join(f"{colors[s]} line: {_LABEL[s]}" for s in sides)


def _plots_section(reports: Sequence[Report], images: dict[str, str]) -> list[str]:
    charts = [(c, mermaid_chart(c)) for c in curves(reports)]
    if not charts:
        return []
    lines = [f"<details><summary>Plots ({len(charts)}): main vs PR</summary>", ""]
    for chart, code in charts:
        lines += [f"**{md_text(chart.title)}** ({_legend(chart)}): {chart_summary(chart)}", ""]
        if code:
            lines += [code, ""]
        if chart.title in images:
            lines += [f"![{md_text(chart.title)}]({images[chart.title]})", ""]
    return lines + ["</details>", ""]


def render(
    reports: Sequence[Report],
    *,
    title: str = "ci-checks report",
    max_chars: int = GITHUB_COMMENT_LIMIT - 200,
    images: dict[str, str] | None = None,
) -> str:
    """The whole report, trimmed section by section until it fits max_chars; says what it trimmed."""
    from ci_checks.scorecard import report_lines as score_lines

    head = [f"## {title}", "", headline(reports), "", *score_lines(reports)]
    from ci_checks.quality.section import section as quality_section
    from ci_checks.data.report import section as data_section

    metrics, folded, long_names = _metrics_section(reports)
    sections = {
        "metrics": metrics,
        "data": data_section(reports, images or {}),
        "model quality": quality_section(reports),
        "policy": _policy_section(reports),
        "metrics within noise": folded,
        "full names": _long_names_section(long_names),
        "checks": _checks_section(reports),
        "params": _params_section(reports),
        "plots": _plots_section(reports, images or {}),
        "details": _details_section(reports),
    }
    trimmed: list[str] = []
    victims = ("details", "plots", "full names", "metrics within noise", "params", "model quality", "data", "checks")
    for victim in (*victims, None):
        note = (
            [
                f"_Trimmed to fit GitHub's comment limit: {', '.join(trimmed)} left out; the full report is in the job "
                "summary and the results artifact._",
                "",
            ]
            if trimmed
            else []
        )
        text = "\n".join(head + [line for part in sections.values() for line in part] + note).rstrip() + "\n"
        if len(text) <= max_chars or victim is None:
            break
        sections[victim] = []
        trimmed.append(victim)
    if len(text) > max_chars:  # still too long: the metrics table itself, cut to the rows that fit
        rows = sections["metrics"] + sections["policy"]
        while rows and len(text) > max_chars:
            rows = rows[: max(0, len(rows) - max(1, len(rows) // 10))]
            note = [
                f"_Trimmed to fit GitHub's comment limit: {', '.join(trimmed + ['metric rows'])} left out; the "
                "full report is in the job summary and the results artifact._",
                "",
            ]
            text = "\n".join(head + rows + note).rstrip() + "\n"
    return text


def render_pngs(reports: Sequence[Report], directory: str) -> dict[str, str]:
    """Render each curve as a PNG (main grey dashed, PR blue, x in the curve's own units); return title -> path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plots-dir needs matplotlib: pip install 'ci-checks[report]'") from None
    os.makedirs(directory, exist_ok=True)
    paths: dict[str, str] = {}
    for i, chart in enumerate(curves(reports)):
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        for side, color, style in (("base", PALETTE[0], "--"), ("head", PALETTE[1], "-")):
            if side in chart.sides:
                pts = _points(*chart.sides[side])
                ax.plot([x for x, _ in pts], [y for _, y in pts], style, color=color, linewidth=2, label=_LABEL[side])
        ax.set_title(plain(chart.title)[:80])
        ax.set_xlabel(plain(chart.x)[:40])
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(directory, f"plot-{i}.png")
        fig.savefig(path)
        plt.close(fig)
        paths[chart.title] = path
    return paths
