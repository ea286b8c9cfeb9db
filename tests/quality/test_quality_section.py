"""The report's Model quality section: worst slices first, names from the pull request escaped."""

from __future__ import annotations

import re

import cmarkgfm
from cmarkgfm.cmark import Options

from ci_checks.commands.report import render
from ci_checks.results import CheckResult, Report


def _slices(rows: list[dict]) -> CheckResult:
    return CheckResult(
        "quality slices", figures={"kind": "quality", "suite": "slices", "rows": rows, "metrics": ["accuracy"]}
    )


def _row(name: str, value: float, verdict: str | None = None) -> dict:
    row: dict = {"slice": name, "n": 100, "judged": True, "metrics": {"accuracy": {"value": value, "ci": [0, 1]}}}
    if verdict:
        row["compared"] = {"accuracy": {"base": 0.9, "delta": value - 0.9, "ci": [-0.1, 0.1], "verdict": verdict}}
    return row


def test_regressed_slices_come_first_then_the_lowest() -> None:
    rows = [
        _row("(all)", 0.9, "within-noise"),
        _row("day", 0.95, "within-noise"),
        _row("night", 0.93, "regressed"),
        _row("dusk", 0.7, "improved"),
    ]
    report = Report("quality", checks=[_slices(rows)], subject={"base": {"name": "main", "sha": "a" * 40}})
    text = render([report])
    assert "### Model quality" in text
    order = [text.index(f"`{n}`") for n in ("night", "(all)", "day", "dusk")]
    assert order == sorted(order)
    assert "Against main" in text and ":red_circle: regressed" in text


def test_names_from_the_pull_request_are_inert_markdown() -> None:
    evil = "@admin <img src=x> | ![x](http://e.vil)\n::error::x"
    behaviour = CheckResult(
        "quality behaviour",
        figures={
            "kind": "quality",
            "suite": "behaviour",
            "rows": [
                {
                    "test": evil,
                    "type": "INV",
                    "n": 4,
                    "failures": 1,
                    "rate": 0.25,
                    "max_rate": 0.1,
                    "worst": [{"id": evil, "violation": 1.0}],
                }
            ],
        },
    )
    report = Report("quality", checks=[_slices([_row(evil, 0.5)]), behaviour])
    text = render([report])
    html = cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)
    assert "<img" not in html and "<a " not in html and 'href="http' not in html
    assert not any(line.startswith("::error") for line in text.splitlines())
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    cells = [row.count("<td") for table in tables for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]
    assert cells == [3, 5]  # the slice row and the test row: a "|" in a name adds no cell
