"""report: merge the JSON results of every check into one Markdown document for the PR comment."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from ci_checks._errors import UserError
from ci_checks.checks.memorization import NAME as MEMORIZATION
from ci_checks.github import GITHUB_COMMENT_LIMIT
from ci_checks.render import STATUS_ICONS
from ci_checks.results import CheckResult, Kind, MetricComparison, Report, Verdict, load_report

HELP = "merge results JSON files into one Markdown report (PR comment, step summary), with plots"
MERMAID_POINTS = 60

VERDICT_ICONS = {
    Verdict.IMPROVED: ":green_circle: improved",
    Verdict.UNCHANGED: ":white_circle: unchanged",
    Verdict.WITHIN_NOISE: ":white_circle: within noise",
    Verdict.REGRESSED: ":red_circle: regressed",
    Verdict.MISSING: ":warning: missing",
    Verdict.NEW: ":new: new",
    Verdict.INVALID: ":warning: invalid",
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
    images: dict[str, str] = {}
    if args.plots_dir:
        images = render_pngs(reports, args.plots_dir)
    markdown = render(reports, title=args.title, max_chars=args.max_chars, images=images if args.embed_images else {})
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(markdown)
        except OSError as e:
            raise UserError(f"{args.output}: cannot write the report ({e.strerror})") from None
    else:
        sys.stdout.write(markdown)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown)
    status = worst(reports)
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as fh:
            fh.write(f"status={status}\n" + (f"report={args.output}\n" if args.output else ""))
    return 0


def worst(reports: Sequence[Report]) -> str:
    from ci_checks.results import merge_statuses

    return merge_statuses([r.status for r in reports])


# ---------------------------------------------------------------- rendering


def _metrics(checks: Sequence[CheckResult]) -> list[tuple[CheckResult, MetricComparison]]:
    return [(c, m) for c in checks if (m := c.metric) is not None]


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.4g}"
    return str(x)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _change(m: MetricComparison) -> str:
    if m.delta is None:
        return "–"
    text = f"{m.delta:+.4g}"
    if m.relative is not None and math.isfinite(m.relative):
        text += f" ({m.relative * 100:+.1f}%)"
    return text


def _evidence(m: MetricComparison) -> str:
    if m.p_value is not None:
        return f" (p={m.p_value:.2g})"
    if m.ci is not None:
        return f" (95% CI {m.ci[0]:+.3g}..{m.ci[1]:+.3g})"
    return ""


def headline(reports: Sequence[Report]) -> str:
    """One line: the verdict a reviewer reads first."""
    metrics = _metrics([c for r in reports for c in r.checks])
    regressed = [(c, m) for c, m in metrics if m.verdict is Verdict.REGRESSED]
    failed_checks = [c for r in reports if r.command != "compare" for c in r.checks if c.status == "fail"]
    first_run = any(r.subject.get("first_run") for r in reports if r.command == "compare")
    parts = []
    if regressed:
        worst_one, worst_metric = regressed[0]
        more = f" and {len(regressed) - 1} more" if len(regressed) > 1 else ""
        parts.append(
            f"{len(regressed)} metric(s) regressed: `{worst_one.check}` "
            f"{_fmt(worst_metric.base)} → {_fmt(worst_metric.head)}{more}"
        )
    if failed_checks:
        names = ", ".join(c.check for c in failed_checks[:3])
        parts.append(f"{len(failed_checks)} check(s) failed: {names}")
    status = worst(reports)
    icon = STATUS_ICONS[status]
    if parts:
        return f"{icon} **" + "; ".join(parts) + "**"
    if first_run:
        return (
            f":information_source: **No baseline on main yet**: {len(metrics)} metric(s) recorded, nothing to "
            "compare. Later pull requests will be compared with this."
        )
    improved = sum(1 for _, m in metrics if m.verdict is Verdict.IMPROVED)
    bits = []
    if metrics:
        bits.append(f"{len(metrics)} metric(s) compared with main" + (f", {improved} improved" if improved else ""))
    checks = sum(1 for r in reports if r.command != "compare" for c in r.checks)
    if checks:
        bits.append(f"{checks} check(s) passed" if status == "pass" else f"{checks} check(s) ran")
    return f"{icon} **No regressions**: " + "; ".join(bits) if bits else f"{icon} **Nothing to report**"


def _metrics_section(reports: Sequence[Report]) -> list[str]:
    lines: list[str] = []
    for r in reports:
        metrics = _metrics(r.checks)
        training = [c for c in r.checks if c.kind is Kind.TRAINING]
        if not metrics and not training:
            continue
        base = r.subject.get("base", {}) if isinstance(r.subject.get("base"), dict) else {}
        ref = base.get("ref") or "main"
        sha = (base.get("sha") or "")[:7]
        lines += [f"### Metrics vs `{ref}`" + (f" ({sha})" if sha else ""), ""]
        if metrics:
            metrics.sort(key=lambda cm: cm[1].verdict.rank)
            lines += ["| metric | main | PR | change | verdict |", "|---|---:|---:|---:|---|"]
            for c, m in metrics:
                n = len(m.head_samples)
                seeds = f" ×{n}" if n > 1 else ""
                lines.append(
                    f"| `{_cell(c.check)}` | {_fmt(m.base)} | {_fmt(m.head)}{seeds} | "
                    f"{_change(m)} | {VERDICT_ICONS[m.verdict]}{_evidence(m)} |"
                )
            lines.append("")
        for c in training:
            icon = STATUS_ICONS[c.status]
            lines += [f"{icon} {_cell(c.summary or c.check)}", ""]
    return lines


def _checks_section(reports: Sequence[Report]) -> list[str]:
    lines: list[str] = []
    for r in reports:
        # A metric whose verdict this version does not know is listed as a check, never dropped.
        checks = [
            c
            for c in r.checks
            if c.kind in (Kind.CHECK, Kind.POLICY, Kind.RERUN) or c.kind is Kind.METRIC and not c.metric
        ]
        if not checks:
            continue
        lines += [f"### {r.command}", "", "| check | status | summary |", "|---|---|---|"]
        for c in checks:
            lines.append(f"| {c.check} | {STATUS_ICONS[c.status]} {c.status} | {_cell(c.summary)} |")
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
        lines.append(f"| `{_cell(name)}` | {_cell(_fmt(old))} | {_cell(_fmt(new))} |")
    return lines + ["", "</details>", ""]


def _details_section(reports: Sequence[Report]) -> list[str]:
    findings = [(r.command, f) for r in reports for c in r.checks for f in c.findings]
    if not findings:
        return []
    lines = [f"<details><summary>Details ({len(findings)} finding(s))</summary>", ""]
    for command, f in findings:
        where = f" `{f.location}`" if f.location else ""
        lines.append(f"- **{command} / {_cell(f.check)}** ({f.severity}){where}: {_cell(f.message)}")
    return lines + ["", "</details>", ""]


def curves(reports: Sequence[Report]) -> list[tuple[str, dict[str, list[float]]]]:
    """Named PR-vs-main curves: compare's curve results, and train-check's loss curves."""
    out: list[tuple[str, dict[str, list[float]]]] = []
    for r in reports:
        for c in r.checks:
            if c.kind is Kind.CURVE:
                ys = c.figures.get("y") or []
                for y in ys if isinstance(ys, list) else [ys]:
                    lines = {side: c.series[f"{side}:{y}"] for side in ("base", "head") if f"{side}:{y}" in c.series}
                    if lines:
                        out.append((f"{c.check.removeprefix('curve ')}: {y}", lines))
            elif r.command == "train-check" and c.check == MEMORIZATION and c.series.get("loss"):
                out.append(("memorization loss (PR)", {"head": c.series["loss"]}))
    return out


def _downsample(values: list[float], n: int) -> list[float]:
    if len(values) <= n:
        return values
    step = (len(values) - 1) / (n - 1)
    return [values[round(i * step)] for i in range(n)]


def mermaid_chart(title: str, lines: dict[str, list[float]]) -> str:
    """An inline xychart-beta that GitHub renders natively: no image host sees private data."""
    series = {
        side: [v for v in _downsample([float(x) for x in vals], MERMAID_POINTS) if math.isfinite(v)]
        for side, vals in lines.items()
    }
    series = {k: v for k, v in series.items() if v}
    if not series:
        return ""
    length = max(len(v) for v in series.values())
    legend = " vs ".join({"base": "main", "head": "PR"}[k] for k in series)
    safe_title = title.replace('"', "'")
    lo = min(min(v) for v in series.values())
    hi = max(max(v) for v in series.values())
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    out = [
        "```mermaid",
        "xychart-beta",
        f'    title "{safe_title} ({legend})"',
        f"    x-axis 0 --> {length - 1}",
        f'    y-axis "{safe_title.split(": ")[-1]}" {lo - pad:.4g} --> {hi + pad:.4g}',
    ]
    for side in ("base", "head"):
        if side in series:
            out.append("    line [" + ", ".join(f"{v:.4g}" for v in series[side]) + "]")
    out.append("```")
    return "\n".join(out)


def _plots_section(reports: Sequence[Report], images: dict[str, str]) -> list[str]:
    charts = [(t, mermaid_chart(t, lines)) for t, lines in curves(reports)]
    charts = [(t, c) for t, c in charts if c]
    if not charts:
        return []
    lines = [f"<details><summary>Plots ({len(charts)}): first line main, second line PR</summary>", ""]
    for title, chart in charts:
        lines += [chart, ""]
        if title in images:
            lines += [f"![{title}]({images[title]})", ""]
    return lines + ["</details>", ""]


def render(
    reports: Sequence[Report],
    *,
    title: str = "ci-checks report",
    max_chars: int = GITHUB_COMMENT_LIMIT - 200,
    images: dict[str, str] | None = None,
) -> str:
    """The whole report, trimmed section by section until it fits max_chars; says what it trimmed."""
    head = [f"## {title}", "", headline(reports), ""]
    sections = {
        "metrics": _metrics_section(reports),
        "checks": _checks_section(reports),
        "params": _params_section(reports),
        "plots": _plots_section(reports, images or {}),
        "details": _details_section(reports),
    }
    trimmed: list[str] = []
    for victim in ("details", "plots", "params", "checks", None):
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
        rows = sections["metrics"]
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
    """Render each curve as a PNG (main vs PR); return title -> path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plots-dir needs matplotlib: pip install 'ci-checks[report]'") from None
    os.makedirs(directory, exist_ok=True)
    paths: dict[str, str] = {}
    for i, (title, lines) in enumerate(curves(reports)):
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        for side, style in (("base", "--"), ("head", "-")):
            if side in lines:
                ax.plot(lines[side], style, label={"base": "main", "head": "PR"}[side])
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(directory, f"plot-{i}.png")
        fig.savefig(path)
        plt.close(fig)
        paths[title] = path
    return paths
