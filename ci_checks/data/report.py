"""The "Data" section of the PR report: failed expectations, drift per dataset against the base, trends on main.

Dataset, feature and category names and example values come from the pull request's data: every one goes through
md_text or md_code, as the metric tables' names do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from ci_checks.render import STATUS_ICONS, md_code, md_text, plain
from ci_checks.results import CheckResult, Kind, Report, Verdict

NAME_LIMIT = 60
SHOWN_FEATURES = 12  # drift rows per dataset before the rest fold away
_SPARKS = "▁▂▃▄▅▆▇█"
VERDICT_TEXT = {
    Verdict.CHANGED.value: ":large_blue_circle: drifted",
    Verdict.WITHIN_NOISE.value: ":white_circle: within noise",
    Verdict.UNCHANGED.value: ":white_circle: unchanged",
    Verdict.NEW.value: ":new: new",
    Verdict.MISSING.value: ":warning: missing",
}
ORDER = [Verdict.CHANGED.value, Verdict.MISSING.value, Verdict.NEW.value, Verdict.WITHIN_NOISE.value, "unchanged"]


def _data(reports: Sequence[Report], role: str) -> list[CheckResult]:
    return [c for r in reports for c in r.checks if c.kind is Kind.DATA and c.figures.get("role") == role]


def _num(x: Any) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return "–"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def sparkline(values: Sequence[Any]) -> str:
    """Values as a line of block characters (gaps for missing values)."""
    nums = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    out = []
    for v in values:
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            out.append(" ")
        else:
            out.append(_SPARKS[min(7, int((v - lo) / (hi - lo) * 8)) if hi > lo else 3])
    return "".join(out)


def section(reports: Sequence[Report], images: dict[str, str] | None = None) -> list[str]:
    """The Markdown lines of the Data section (none when no data results were given); images: title -> PNG path."""
    expectations, drift, stats = _data(reports, "expectations"), _data(reports, "drift"), _data(reports, "stats")
    if not (expectations or drift or stats):
        return []
    lines = ["### Data", ""]
    if expectations:
        lines += _expectations(expectations)
    for c in drift:
        lines += _drift(c)
    lines += _trends(stats)
    for title, path in (images or {}).items():
        if title.startswith("data "):
            lines += [f"![{md_text(title)}]({path})", ""]
    if stats and not drift:
        shown = ", ".join(
            f"{md_code(c.figures.get('dataset'), limit=NAME_LIMIT)} ({md_text(c.summary)})" for c in stats
        )
        lines += [f"Statistics recorded: {shown}.", ""]
    return lines


def _expectations(checks: Sequence[CheckResult]) -> list[str]:
    lines = ["| dataset | status | expectations |", "|---|---|---|"]
    details: list[str] = []
    for c in checks:
        name = md_code(c.figures.get("dataset", c.check), table=True, limit=NAME_LIMIT)
        lines.append(f"| {name} | {STATUS_ICONS[c.status]} {c.status} | {md_text(c.summary)} |")
        for f in c.figures.get("failures") or []:
            if not isinstance(f, dict):
                continue
            rows = ", ".join(str(r) for r in (f.get("rows") or [])[:5])
            unit = f.get("unit") or c.figures.get("unit", "row")
            values = ", ".join(str(v) for v in (f.get("values") or [])[:5] if v)
            text = (
                f"{f.get('count')} {unit}(s)" + (f", first {rows}" if rows else "") + (f": {values}" if values else "")
            )
            details.append(
                f"- {md_code(c.figures.get('dataset', ''), limit=40)} {md_text(f.get('expectation', ''), limit=120)}: "
                f"{md_text(text, limit=300)} ({md_text(f.get('severity'))})"
            )
    lines.append("")
    if details:
        lines += ["<details><summary>Failed expectations</summary>", "", *details, "", "</details>", ""]
    return lines


def _drift(c: CheckResult) -> list[str]:
    fig = c.figures
    name = md_code(fig.get("dataset", c.check), limit=NAME_LIMIT)
    base = md_text(fig.get("base", "the base"))
    rows = fig.get("rows") if isinstance(fig.get("rows"), list) and len(fig["rows"]) == 2 else None
    features = [f for f in fig.get("features") or [] if isinstance(f, dict)]
    if not features:
        return [f"**Drift of {name}** against {base}: {md_text(c.summary)}", ""]
    size = f"rows {_num(rows[0])} → {_num(rows[1])}" if rows else ""
    change = fig.get("size_change")
    if isinstance(change, (int, float)):
        size += f" ({change:+.1%})"
    policy = fig.get("policy") or {}
    lines = [
        f"**Drift of {name}** against {base}: {STATUS_ICONS[c.status]} {md_text(c.summary)}",
        "",
        f"_{md_text(size)}; a feature drifts when its test is significant (Holm, alpha {_num(policy.get('alpha'))}) "
        f"and its PSI reaches {_num(policy.get('psi'))}, thresholds from {base}._",
        "",
        "| feature | verdict | base → PR | PSI | test | p (adj.) |",
        "|---|---|---|---|---|---|",
    ]
    features.sort(
        key=lambda f: (ORDER.index(str(f.get("verdict"))) if f.get("verdict") in ORDER else 9, -(f.get("psi") or 0))
    )
    shown = [f for f in features if f.get("verdict") != "unchanged"][:SHOWN_FEATURES] or features[:3]
    for f in shown:
        lines.append(
            f"| {md_code(f.get('feature'), table=True, limit=NAME_LIMIT)} | "
            f"{VERDICT_TEXT.get(str(f.get('verdict')), md_text(f.get('verdict')))} | {_change(f, fig.get('label'))} | "
            f"{_num(f.get('psi'))} | {md_text(f.get('test') or '–')} | {_num(f.get('p_adjusted'))} |"
        )
    rest = len(features) - len(shown)
    if rest > 0:
        lines.append(f"| _{rest} more feature(s) unchanged_ | | | | | |")
    lines.append("")
    return lines


def _change(f: dict[str, Any], label: Any) -> str:
    """What moved, in a cell: means, null rates, shares of the classes that moved most, categories in or out."""
    bits = []
    if f.get("type") == "numeric" and isinstance(f.get("mean"), list) and len(f["mean"]) == 2:
        bits.append(f"mean {_num(f['mean'][0])} → {_num(f['mean'][1])}")
    if f.get("type") == "categorical" and isinstance(f.get("shares"), list) and len(f["shares"]) == 2:
        b, h = f["shares"]
        if isinstance(b, dict) and isinstance(h, dict):
            moved = sorted(set(b) | set(h), key=lambda k: -abs(float(h.get(k, 0)) - float(b.get(k, 0))))[:2]
            what = "class" if f.get("feature") == label else ""
            bits += [
                f"{what} {plain(k)[:24]} {float(b.get(k, 0)):.1%} → {float(h.get(k, 0)):.1%}".strip() for k in moved
            ]
    nulls = f.get("null_rate")
    if isinstance(nulls, list) and len(nulls) == 2 and all(isinstance(v, (int, float)) for v in nulls):
        if nulls[0] != nulls[1]:
            bits.append(f"nulls {nulls[0]:.1%} → {nulls[1]:.1%}")
    for key, word in (("added", "+"), ("removed", "−")):
        if f.get(key):
            bits.append(word + " " + ", ".join(plain(v)[:24] for v in f[key][:3]))
    return "; ".join(md_text(b) for b in bits) or "–"


def _trends(stats: Sequence[CheckResult]) -> list[str]:
    lines: list[str] = []
    for c in stats:
        trends = {k[6:]: v for k, v in c.series.items() if k.startswith("trend:") and k != "trend:rows"}
        commits = c.figures.get("history")
        if not trends or not isinstance(commits, int):
            continue
        lines += [
            f"<details><summary>Trend of {md_code(c.figures.get('dataset'), limit=NAME_LIMIT)} over the last "
            f"{commits} commit(s) on main and this one ({len(trends)} feature(s) that moved)</summary>",
            "",
            "| feature | trend | first → now |",
            "|---|---|---|",
        ]
        for feature, values in list(trends.items())[:SHOWN_FEATURES]:
            nums = [v if isinstance(v, (int, float)) else float("nan") for v in values]
            lines.append(
                f"| {md_code(feature, table=True, limit=NAME_LIMIT)} | `{sparkline(nums)}` | "
                f"{_num(nums[0])} → {_num(nums[-1])} |"
            )
        lines += ["", "</details>", ""]
    return lines


def render_pngs(reports: Sequence[Report], directory: str) -> dict[str, str]:
    """A PNG per drifted feature: the base's and the PR's distribution (quantile curves); title -> path."""
    drift = [c for c in _data(reports, "drift") if c.figures.get("features")]
    if not drift:
        return {}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ci_checks._errors import UserError

        raise UserError("--plots-dir needs matplotlib: pip install 'ci-checks[report]'") from None

    os.makedirs(directory, exist_ok=True)
    paths: dict[str, str] = {}
    for c in drift:
        for f in c.figures["features"]:
            if not isinstance(f, dict) or f.get("verdict") != Verdict.CHANGED.value or len(paths) >= 8:
                continue
            title = f"data {plain(c.figures.get('dataset'))}: {plain(f.get('feature'))}"[:80]
            fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
            if isinstance(f.get("shares"), list) and len(f["shares"]) == 2:
                b, h = f["shares"]
                keys = sorted(set(b) | set(h))[:20]
                x = range(len(keys))
                ax.bar([i - 0.2 for i in x], [b.get(k, 0) for k in keys], 0.4, color="#8c959f", label="main")
                ax.bar([i + 0.2 for i in x], [h.get(k, 0) for k in keys], 0.4, color="#0969da", label="PR")
                ax.set_xticks(list(x), [plain(k)[:12] for k in keys], rotation=45, ha="right")
                ax.set_ylabel("share")
            elif isinstance(f.get("quantiles"), list) and len(f["quantiles"]) == 2:
                probs = [0.05, 0.25, 0.5, 0.75, 0.95]
                ax.plot(f["quantiles"][0], probs, "--o", color="#8c959f", label="main")
                ax.plot(f["quantiles"][1], probs, "-o", color="#0969da", label="PR")
                ax.set_ylabel("quantile")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
            fig.tight_layout()
            path = os.path.join(directory, f"data-{len(paths)}.png")
            fig.savefig(path)
            plt.close(fig)
            paths[title] = path
    return paths
