"""The "Model quality" section of the pull-request report: worst slices first, then behavioural tests, calibration,
hard-example suites and prediction flips, each against the base when the results hold a comparison.

Slice, test, suite and example names come from the pull request's spec: every one goes through md_text/md_code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ci_checks.render import STATUS_ICONS, md_code, md_text
from ci_checks.results import CheckResult, Kind, Report

VERDICTS = {
    "regressed": ":red_circle: regressed",
    "improved": ":green_circle: improved",
    "changed": ":large_blue_circle: changed",
    "within-noise": ":white_circle: within noise",
    "unchanged": ":white_circle: unchanged",
    "not-judged": ":fast_forward: too few examples to judge",
}
RANK = {"regressed": 0, "changed": 1, "within-noise": 2, "unchanged": 3, "improved": 4, "not-judged": 5}
MAX_SLICES = 25  # more slices than this: the worst ones, and a count of the rest
LOWER_IS_BETTER = ("loss",)


def _num(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _ci(pair: Any) -> str:
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair):
        return f" ({pair[0]:.3f}..{pair[1]:.3f})"
    return ""


def _signed(x: Any) -> str:
    return f"{x:+.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _verdict(cell: Mapping[str, Any] | None) -> str:
    if not cell or "verdict" not in cell:
        return "-"
    return VERDICTS.get(str(cell["verdict"]), md_text(cell["verdict"]))


def quality_results(reports: Sequence[Report]) -> list[CheckResult]:
    return [c for r in reports if r.command == "quality" for c in r.checks if c.kind is Kind.QUALITY]


def section(reports: Sequence[Report]) -> list[str]:
    """The Markdown lines of the section ([] when no quality results are among the reports)."""
    results = quality_results(reports)
    if not results:
        return []
    lines = ["### Model quality", ""]
    base = next((r.subject.get("base") for r in reports if r.command == "quality" and r.subject.get("base")), None)
    if isinstance(base, Mapping):
        sha = str(base.get("sha") or "")[:7]
        where = f"{md_text(base.get('name', 'base'))}" + (f" ({md_code(sha)})" if sha else "")
        if base.get("note"):
            lines += [f"Not compared with {where}: {md_text(base['note'])}", ""]
        else:
            lines += [
                f"Against {where}: paired on the examples both models saw; Holm-corrected across every slice, "
                "test and suite.",
                "",
            ]
    by_suite: dict[str, list[CheckResult]] = {}
    for c in results:
        by_suite.setdefault(str(c.figures.get("suite")), []).append(c)
    for c in by_suite.get("slices", []):
        lines += _slices(c)
    for c in by_suite.get("behaviour", []):
        lines += _behaviour(c)
    for c in by_suite.get("calibration", []):
        lines += _calibration(c)
    suites = by_suite.get("suite", [])
    if suites:
        lines += _suites(suites)
    for c in by_suite.get("flips", []):
        lines += [f"**Prediction flips**: {md_text(c.summary)}", ""]
    for c in by_suite.get("mine", []):
        lines += [f"**Mined**: {md_text(c.summary)}", ""]
    return lines


def _slice_key(row: Mapping[str, Any], metric: str) -> tuple[int, float]:
    cell = (row.get("compared") or {}).get(metric) or {}
    rank = RANK.get(str(cell.get("verdict")), 5)
    value = (row.get("metrics") or {}).get(metric, {}).get("value")
    score = float(value) if isinstance(value, (int, float)) else float("inf")
    return rank, (-score if metric in LOWER_IS_BETTER else score)


def _slices(c: CheckResult) -> list[str]:
    rows = [r for r in c.figures.get("rows", []) if isinstance(r, Mapping)]
    metrics = [m for m in c.figures.get("metrics", []) if isinstance(m, str)]
    if not rows or not metrics:
        return []
    compared = any(r.get("compared") for r in rows)
    first = metrics[0]
    rows = sorted(rows, key=lambda r: _slice_key(r, first))
    head = ["slice", "n", *(f"{md_text(m)} (95% CI)" for m in metrics)]
    if compared:
        head += [f"{md_text(first)} on base", "change", "verdict"]
    lines = [
        f"**Slices** {STATUS_ICONS[c.status]} worst first, by {md_text(first)}:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows[:MAX_SLICES]:
        cells = [md_code(r.get("slice", ""), table=True, limit=60), str(r.get("n", "-"))]
        for m in metrics:
            cell = (r.get("metrics") or {}).get(m) or {}
            cells.append(_num(cell.get("value")) + _ci(cell.get("ci")))
        if compared:
            cmp = (r.get("compared") or {}).get(first) or {}
            cells += [_num(cmp.get("base")), _signed(cmp.get("delta")) + _ci(cmp.get("ci")), _verdict(cmp)]
        if r.get("note"):
            cells[1] += f" ({md_text(r['note'])})"
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > MAX_SLICES:
        lines.append(f"\n_{len(rows) - MAX_SLICES} more slices are in the results JSON._")
    return lines + [""]


def _behaviour(c: CheckResult) -> list[str]:
    rows = [r for r in c.figures.get("rows", []) if isinstance(r, Mapping)]
    if not rows:
        return []
    compared = any(r.get("compared") for r in rows)
    head = ["test", "type", "failures", "allowed", *(["on base", "verdict"] if compared else []), "worst examples"]
    lines = [
        f"**Behavioural tests** {STATUS_ICONS[c.status]}:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    rows = sorted(
        rows, key=lambda r: (RANK.get(str((r.get("compared") or {}).get("verdict")), 5), -(r.get("rate") or 0))
    )
    for r in rows:
        if r.get("missing"):
            lines.append(
                f"| {md_code(r.get('test', ''), table=True, limit=60)} | {md_text(r.get('type', ''))} | gone "
                "from this change | - |" + (" - | - |" if compared else "") + " - |"
            )
            continue
        rate = r.get("rate")
        over = isinstance(rate, (int, float)) and rate > float(r.get("max_rate", 1.0))
        cells = [
            md_code(r.get("test", ""), table=True, limit=60),
            md_text(r.get("type", "")),
            f"{r.get('failures', 0)}/{r.get('n', 0)} ({_pct(rate)})" + (" :x:" if over else ""),
            _pct(r.get("max_rate")),
        ]
        if compared:
            cmp = r.get("compared") or {}
            cells += [_pct(cmp.get("base_rate")), _verdict(cmp)]
        worst = [w for w in r.get("worst", []) if isinstance(w, Mapping)][:3]
        cells.append(
            ", ".join(
                f"{md_code(w.get('id', ''), table=True, limit=30)} ({_num(w.get('violation'), 2)})" for w in worst
            )
            or "-"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _calibration(c: CheckResult) -> list[str]:
    f = c.figures
    ece = _num(f.get("ece")) + _ci(f.get("ece_ci"))
    line = f"**Calibration** {STATUS_ICONS[c.status]}: expected calibration error {ece}"
    if f.get("max_ece") is not None:
        line += f" (allowed {_num(f.get('max_ece'))})"
    cmp = f.get("compared")
    if isinstance(cmp, Mapping):
        line += f"; base {_num(cmp.get('base'))}, change {_signed(cmp.get('delta'))}, {_verdict(cmp)}"
    line += "; " + (
        f"confidence >= {_num(f.get('threshold'))} reaches precision {_num(f.get('precision'))} "
        f"(target {_num(f.get('target_precision'), 2)}) on {_pct(f.get('coverage'))} of examples"
        if f.get("threshold") is not None
        else f"no confidence threshold reaches precision {_num(f.get('target_precision'), 2)}"
    )
    lines = [line, ""]
    if f.get("plot"):
        lines += [f"Reliability diagram: {md_code(f['plot'])}", ""]
    return lines


def _suites(results: Sequence[CheckResult]) -> list[str]:
    compared = any(isinstance(c.figures.get("compared"), Mapping) for c in results)
    head = ["suite", "failure type", "right", *(["on base", "verdict"] if compared else [])]
    lines = ["**Hard-example suites**:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in results:
        f = c.figures
        cells = [
            md_code(f.get("name", ""), table=True, limit=60),
            md_text(f.get("failure") or "-", limit=60),
            f"{STATUS_ICONS[c.status]} {f.get('correct', 0)}/{f.get('n', 0)}",
        ]
        if compared:
            cmp = f.get("compared") if isinstance(f.get("compared"), Mapping) else {}
            cells += [f"{cmp.get('base', '-')}/{f.get('n', 0)}" if cmp else "-", _verdict(cmp)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
