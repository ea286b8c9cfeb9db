"""Statistics over time: the data-stats results of each commit on main, kept in a folder (an artifact or a cache
the workflow restores), and the trend of the features that moved."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ci_checks._errors import UserError
from ci_checks.results import Kind, Report

KEEP = 50  # commits shown in a trend
PREFIX = "data-stats-"


def load_history(folder: str, *, log: Callable[[str], None]) -> list[Report]:
    """The data-stats results in folder, oldest first (a file that is not one is skipped, with a line in the log)."""
    from ci_checks.results import load_report

    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise UserError(f"--history {folder}: is a file, not a folder of data-stats results")
        return []  # the first run on main: nothing kept yet
    reports = []
    for name in sorted(os.listdir(folder)):
        if not (name.startswith(PREFIX) and name.endswith(".json")):
            continue
        try:
            doc = load_report(os.path.join(folder, name))
        except UserError as e:
            log(f"history: {e}; skipped")
            continue
        if doc.command == "data-stats":
            reports.append(doc)
    reports.sort(key=lambda r: (r.created, _number(r.subject.get("recorded"))))
    return reports[-KEEP:]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def save(folder: str, report: Report, sha: str | None) -> str:
    """Add this run's results to folder: one file per commit (a rerun of a commit replaces its own file)."""
    import time

    from ci_checks import _io
    from ci_checks.render import render_json

    report.subject["recorded"] = time.time()  # orders runs within one second
    try:
        os.makedirs(folder, exist_ok=True)
        stamp = report.created.replace(":", "").replace("-", "").replace("+00:00", "Z")
        path = os.path.join(folder, f"{PREFIX}{sha[:12]}.json" if sha else f"{PREFIX}{stamp}.json")
        _io.write_text(path, render_json(report))
    except OSError as e:
        raise UserError(f"--history {folder}: cannot write this run's statistics there ({e.strerror or e})") from None
    return path


def _columns(snapshot: Any) -> dict[str, Any]:
    columns = snapshot.get("columns") if isinstance(snapshot, dict) else None
    return columns if isinstance(columns, dict) else {}  # a malformed file of the history shows no trend


def _value(column: Any) -> float | None:
    """The one number of a feature a trend follows: the mean of a number, the share of the top category."""
    if not isinstance(column, dict):
        return None
    if column.get("type") == "numeric":
        mean = column.get("mean")
        return float(mean) if isinstance(mean, (int, float)) else None
    top, count = column.get("top"), column.get("count")
    if isinstance(top, dict) and top and isinstance(count, (int, float)) and count > 0:
        counts = [v for v in top.values() if isinstance(v, (int, float))]
        return float(max(counts)) / float(count) if counts else None
    return None


def add_trends(report: Report, history: list[Report]) -> None:
    """Series "trend:<feature>" on each dataset's stats check: the feature's value on each kept commit and now.

    Only the features that moved are kept: those the drift check did not find unchanged, or, without a base,
    those whose value left the range of the history by more than a tenth of that range.
    """
    past: dict[str, list[dict[str, Any]]] = {}
    for doc in history:
        for c in doc.checks:
            if c.kind is Kind.DATA and c.figures.get("role") == "stats" and isinstance(c.figures.get("snapshot"), dict):
                past.setdefault(str(c.figures.get("dataset")), []).append(c.figures["snapshot"])
    drifted: dict[str, set[str]] = {}
    for c in report.checks:
        if c.kind is Kind.DATA and c.figures.get("role") == "drift":
            drifted[str(c.figures.get("dataset"))] = {
                str(f.get("feature"))
                for f in c.figures.get("features") or []
                if f.get("verdict") not in ("unchanged", None)
            }
    for c in report.checks:
        if not (c.kind is Kind.DATA and c.figures.get("role") == "stats"):
            continue
        name = str(c.figures.get("dataset"))
        snaps = [*past.get(name, []), c.figures.get("snapshot") or {}]
        if len(snaps) < 2:
            continue
        c.figures["history"] = len(snaps) - 1
        for feature in _columns(snaps[-1]):
            values = [_value(_columns(s).get(feature)) for s in snaps]
            known = [v for v in values if v is not None]
            if len(known) < 2:
                continue
            moved = feature in drifted[name] if name in drifted else _left_range(known)
            if moved:
                c.series[f"trend:{feature}"] = [float("nan") if v is None else v for v in values]
        c.series["trend:rows"] = [float(s["rows"]) if isinstance(s.get("rows"), int) else float("nan") for s in snaps]


def _left_range(values: list[float]) -> bool:
    *before, now = values
    lo, hi = min(before), max(before)
    margin = max((hi - lo) * 0.1, abs(hi) * 0.01, 1e-12)
    return now < lo - margin or now > hi + margin
