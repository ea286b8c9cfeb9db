"""`ci-checks report`: one Markdown document from all results, rendered as GitHub renders it."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from ci_checks.commands import report as report_cmd
from ci_checks.compare.files import key_segment
from ci_checks.render import plain, render_json
from ci_checks.results import CheckResult, Report
from ci_checks.main import main


def metric(name: str, verdict: str, base: float | None, head: float | None, **extra: object) -> CheckResult:
    c = CheckResult(
        name,
        figures={
            "kind": "metric",
            "verdict": verdict,
            "base": base,
            "head": head,
            "delta": None if base is None or head is None else head - base,
            "relative": None if not base or head is None else (head - base) / base,
            **extra,
        },
    )
    if verdict == "regressed":
        c.add("error", f"{name} regressed: {base} -> {head}")
    return c


def compare_doc(*metrics: CheckResult, first_run: bool = False, params: dict | None = None) -> Report:
    curve = CheckResult(
        "curve plots/train_loss.csv",
        figures={"kind": "curve", "x": "epoch", "y": ["loss"]},
        series={"base:loss": [1.0, 0.6, 0.4, 0.3], "head:loss": [1.0, 0.7, 0.5, 0.45]},
    )
    return Report(
        "compare",
        [*metrics, curve],
        subject={
            "base": {"ref": "main", "sha": "0123456789abcdef", "source": "git"},
            "head": {"ref": "working tree", "sha": None},
            "fail_on": "regressed",
            "params_changed": params or {},
            "first_run": first_run,
        },
    )


def train_doc(fail: bool = False) -> Report:
    mem = CheckResult("memorization", series={"loss": [2.3, 1.2, 0.4, 0.1]}, summary="memorized in 4 steps")
    upd = CheckResult("parameter-updates", summary="4/4 updated")
    if fail:
        upd.add("error", "parameter-updates: fc.weight has requires_grad=False but is not declared frozen")
    return Report("train-check", [upd, mem])


def write(tmp_path: Path, name: str, doc: Report) -> str:
    path = tmp_path / name
    path.write_text(render_json(doc))
    return str(path)


def gfm(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def test_regression_headline_table_and_plots_render_as_github_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = compare_doc(
        metric("metrics/eval.json:accuracy", "regressed", 0.912, 0.897, p_value=0.003, head_samples=[0.89, 0.9, 0.9]),
        metric("metrics/eval.json:loss", "improved", 0.31, 0.29),
        metric("metrics/eval.json:f1", "unchanged", 0.8, 0.8),
        params={"train.lr": {"old": 0.01, "new": 0.02}},
    )
    out = tmp_path / "report.md"
    code = main(
        [
            "report",
            write(tmp_path, "compare.json", doc),
            write(tmp_path, "train.json", train_doc()),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    md = out.read_text()
    first = md.splitlines()[2]
    assert first.startswith(":x: **1 metric(s) regressed: `metrics/eval.json:accuracy` 0.912 → 0.897")
    html = gfm(md)
    table = re.search(r"<table>.*?</table>", html, re.S).group(0)  # type: ignore[union-attr]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert len(rows) == 4  # header + 3 metrics, regressed first
    assert "metrics/eval.json:accuracy" in rows[1] and "regressed" in rows[1] and "p=0.003" in rows[1]
    assert "×3" in rows[1]
    assert "-1.6%" in rows[1]
    assert '<pre lang="mermaid"' in html and "xychart-beta" in html
    assert "<details>" in html and "train.lr" in html
    assert capsys.readouterr().out == ""


def test_first_run_says_there_is_no_baseline_and_passes(tmp_path: Path) -> None:
    doc = compare_doc(metric("m:acc", "new", None, 0.9), first_run=True)
    md = report_cmd.render([Report.from_dict(doc.to_dict())])
    assert "No baseline on main yet" in md.splitlines()[2]
    assert main(["report", write(tmp_path, "c.json", doc)]) == 0


def test_failed_training_check_is_in_the_headline_and_details(tmp_path: Path) -> None:
    md = report_cmd.render([train_doc(fail=True)])
    assert md.splitlines()[2] == ":x: **1 check(s) failed: `parameter-updates`**"
    assert "requires_grad=False" in gfm(md)  # escaped in the Markdown, as it reads once rendered


def test_report_fits_the_comment_limit_and_says_what_it_trimmed() -> None:
    many = [metric(f"metrics/m{i}.json:a_very_long_metric_name_{i}", "unchanged", 0.5, 0.5) for i in range(300)]
    many[0] = metric("metrics/x.json:acc", "regressed", 0.9, 0.8)
    for c in many[1:]:
        c.add("warning", "x" * 300)
    md = report_cmd.render([compare_doc(*many)], max_chars=20000)
    assert len(md) <= 20000
    assert "Trimmed to fit GitHub's comment limit: details" in md
    assert "metrics/x.json:acc" in md  # regressions are kept first


def test_step_summary_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert main(["report", write(tmp_path, "t.json", train_doc(fail=True)), "--output", str(tmp_path / "r.md")]) == 0
    assert summary.read_text() == (tmp_path / "r.md").read_text()
    assert "status=fail" in outputs.read_text()


def test_png_plots(tmp_path: Path) -> None:
    doc = compare_doc(metric("m:acc", "unchanged", 0.9, 0.9))
    out = tmp_path / "r.md"
    assert (
        main(
            [
                "report",
                write(tmp_path, "c.json", doc),
                "--plots-dir",
                str(tmp_path / "plots"),
                "--embed-images",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert pngs and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({pngs[0]})" in out.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "results file not found", id="missing"),
        pytest.param("{not json", "not valid JSON", id="malformed"),
        pytest.param(json.dumps({"schema": "other"}), "not a ci-checks results file", id="foreign"),
        pytest.param(
            json.dumps({"schema": "ci-checks/results", "schema_version": 99}), "upgrade ci-checks", id="newer"
        ),
    ],
)
def test_bad_results_files_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_allow_missing_skips_jobs_that_did_not_run(tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "none.json"), write(tmp_path, "t.json", train_doc()), "--allow-missing"]) == 0


def test_a_folder_instead_of_a_results_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


# ---------------------------------------------------------------- untrusted text is inert


HOSTILE = [
    "@octocat please look",
    "cc @org/team",
    "fixes #1",
    "GH-12 and owner/repo#3",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "</details><details open>",
    "<!-- hidden",
    "[click](https://evil.example)",
    "![pixel](https://evil.example/x.png)",
    "see https://evil.example or www.evil.example",
    "mail me@evil.example",
    "a`b``c",
    "`leading backtick",
    "pipe | in name",
    "line\nbreak ::error title=forged::pwned",
    "x\n::error title=forged::gotcha\r\n::warning::more",
    "```mermaid",
    "**bold** _it_ ~~gone~~ $x^2$ &lt;b&gt;",
    "\u202eevil",
]
# What GitHub turns into a link or a mention in text (not in code): @user, #12, GH-12, URLs, www. and e-mail.
LIVE = re.compile(r"@[A-Za-z0-9]|#\d|\bGH-\d|://|\bwww\.", re.I)
ALLOWED_TAGS = {"h2", "h3", "p", "strong", "em", "code", "pre", "table", "thead", "tbody", "tr", "th", "td"}
ALLOWED_TAGS |= {"details", "summary", "ul", "li"}


class _Html(HTMLParser):
    """The tags of the rendered HTML, the text outside code, and the text of each code element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.outside: list[str] = []
        self.codes: list[str] = []
        self._code = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)
        if tag in ("code", "pre"):
            self._code += 1
            self.codes.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre"):
            self._code -= 1

    def handle_data(self, data: str) -> None:
        if self._code:
            self.codes[-1] += data
        else:
            self.outside.append(data)

    def handle_comment(self, data: str) -> None:
        self.tags.append("<!--")


def hostile_project(compare_project: Any) -> Any:
    config = '[tool.ci-checks.compare]\nfiles = ["metrics.json"]\n' 'curves = [{path = "plots/loss.csv", x = "step"}]\n'
    base = {name: 0.5 for name in HOSTILE}
    head = {name: (0.4 if i % 2 else 0.5) for i, name in enumerate(HOSTILE)}
    curve = 'step,"lo\nss```\n</details>"\n' + "".join(f"{s},{1 / (1 + s)}\n" for s in range(20))
    return compare_project(
        {
            "pyproject.toml": config,
            "metrics.json": base,
            "params.yaml": json.dumps({"@octocat": "<img src=x>"}),
            "plots/loss.csv": curve,
        },
        {
            "metrics.json": json.dumps(head),
            "params.yaml": json.dumps({"@octocat": "[x](https://evil.example) #1"}),
            "plots/loss.csv": curve.replace(",1", ",2"),
        },
    )


def test_hostile_names_render_inert_as_github_renders_them(compare_project: Any, tmp_path: Path) -> None:
    p = hostile_project(compare_project)
    assert p.compare()[0] in (0, 1)
    train = train_doc(fail=True)
    train.checks[0].findings[0].message = "@octocat <img src=x> [x](https://evil.example) #7 `"
    out = tmp_path / "report.md"
    code = main(["report", str(p.root / "compare.json"), write(tmp_path, "t.json", train), "--output", str(out)])
    assert code == 0
    md = out.read_text()
    html = gfm(md)
    parsed = _Html()
    parsed.feed(html)
    assert set(parsed.tags) <= ALLOWED_TAGS, set(parsed.tags) - ALLOWED_TAGS  # no a, img, script, comment
    text = " ".join(parsed.outside)
    assert not LIVE.search(text), LIVE.search(text)
    shown = "\n".join(parsed.codes)
    for name in HOSTILE:  # every name whole in one code span: nothing closed it early or split it
        assert f"metrics.json:{plain(key_segment(name))}" in shown, name
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    metric_rows = [r for r in rows if "metrics.json:" in r]
    assert len(metric_rows) == len(HOSTILE) and all(r.count("<td") == 6 for r in metric_rows)
    (chart,) = [c for c in parsed.codes if 'title "plots/loss.csv' in c]
    assert "```" not in chart and "</details>" not in chart and chart.count("\n    line [") == 2


def test_text_and_github_output_cannot_forge_a_workflow_command(compare_project: Any, capsys: Any) -> None:
    p = hostile_project(compare_project)
    for fmt in ("text", "github"):
        main(["compare", "--head-dir", str(p.root), "--format", fmt])
        out, err = capsys.readouterr()
        ours = [line for line in out.splitlines() if line.startswith(("::error ", "::warning ", "::notice"))]
        forged = [line for line in (out + err).splitlines() if line.lstrip().startswith("::") and line not in ours]
        assert forged == [] and "x\\n::error title=forged::gotcha\\r\\n::warning::more" in out
        for line in ours:  # our annotations carry the names escaped as the toolkit escapes data
            assert "forged" not in line or "%0A::error title=forged::gotcha%0D%0A::warning::more" in line


# ---------------------------------------------------------------- the headline agrees with the status


def metric_doc(*checks: CheckResult) -> Report:
    return compare_doc(*checks)


@pytest.mark.parametrize(
    ("reason", "severity", "verdict", "expected"),
    [
        pytest.param("nonfinite", "error", "invalid", ":x: **1 metric(s) NaN or infinite: `m:acc`", id="nan"),
        pytest.param("missing", "error", "missing", ":x: **1 gating metric(s) missing: `m:acc`", id="missing"),
        pytest.param("invalid", "error", "invalid", ":x: **1 metric(s) not a number: `m:acc`", id="invalid"),
        pytest.param(
            "regressed-report-only",
            "warning",
            "regressed",
            ":warning: **No gating regressions, but 1 report-only metric(s) regressed: `m:acc` 0.9 → 0.8",
            id="report-only",
        ),
        pytest.param(
            "diverged",
            "warning",
            "within-noise",
            ":warning: **No gating regressions, but 1 metric(s) with a diverged seed",
            id="diverged",
        ),
    ],
)
def test_the_headline_names_the_reason_for_the_status(reason: str, severity: str, verdict: str, expected: str) -> None:
    c = metric("m:acc", verdict, 0.9, 0.8 if verdict == "regressed" else None, gating=reason != "regressed-report-only")
    c.findings.clear()
    c.add(severity, "m:acc: something", reason=reason)
    doc = compare_doc(c)
    line = report_cmd.render([doc]).splitlines()[2]
    assert line.startswith(expected), line
    assert line.startswith(report_cmd.STATUS_ICONS[doc.status])
    assert "No regressions" not in line


def test_and_n_more_counts_the_same_kind() -> None:
    checks = []
    for i in range(3):
        checks.append(metric(f"m:r{i}", "regressed", 0.9, 0.8, gating=True))
        checks[-1].findings[0].details["reason"] = "regressed"
    for i in range(2):
        nan = metric(f"m:n{i}", "invalid", 0.9, None)
        nan.add("error", "NaN", reason="nonfinite")
        checks.append(nan)
    line = report_cmd.render([compare_doc(*checks)]).splitlines()[2]
    assert line == (
        ":x: **3 metric(s) regressed: `m:r0` 0.9 → 0.8 and 2 more; "
        "2 metric(s) NaN or infinite: `m:n0` (was 0.9) and 1 more**"
    )


def test_long_names_are_cut_in_the_table_and_whole_in_full_names() -> None:
    long = "metrics.json:" + "x" * 10_000
    md = report_cmd.render([compare_doc(metric(long, "unchanged", 0.5, 0.5))])
    table_row = next(line for line in md.splitlines() if line.startswith("| `metrics.json:xxx"))
    assert len(table_row) < 200 and "…" in table_row
    assert f"`{long}`" in md.split("Full names (1)")[1]


# ---------------------------------------------------------------- charts


def test_charts_have_a_legend_step_units_and_a_readable_fallback() -> None:
    curve = CheckResult(
        "curve plots/loss.csv",
        figures={"kind": "curve", "x": "epoch", "y": ["loss"]},
        series={
            "base:epoch": [0.0, 10.0, 20.0, 30.0],
            "base:loss": [1.0, 0.6, 0.4, 0.3],
            "head:epoch": [0.0, 10.0, 20.0, 30.0],
            "head:loss": [1.0, 0.7, 0.5, 0.45],
        },
    )
    mem = CheckResult("memorization", series={"loss": [2.3, 1.2, 0.4, 0.1]})
    doc = Report("compare", [curve], subject={})
    md = report_cmd.render([doc, Report("train-check", [mem])])
    assert "**plots/loss.csv: loss** (grey line: main, blue line: PR): main `" in md  # the legend, as text
    assert "1 → 0.3 (min 0.3, epoch 0–30)" in md and "PR `" in md  # readable without Mermaid (e-mail)
    assert 'x-axis "epoch" 0 --> 30' in md  # the curve's own units, not the index of a point
    assert '"plotColorPalette": "#8c959f, #0969da"' in md  # grey and blue: both lines plainly visible
    assert 'title "memorization loss"' in md and "(PR) (PR)" not in md
    assert "**memorization loss** (blue line: PR)" in md


def test_charts_of_different_lengths_share_the_range_both_ran() -> None:
    curve = CheckResult(
        "curve c.csv",
        figures={"kind": "curve", "x": "step", "y": ["loss"]},
        series={
            "base:step": [0, 50, 100],
            "base:loss": [1, 0.5, 0.2],
            "head:step": [0, 25, 50],
            "head:loss": [1, 0.6, 0.4],
        },
    )
    md = report_cmd.render([Report("compare", [curve], subject={})])
    assert 'x-axis "step" 0 --> 50' in md and "where both have points (main 0–100, PR 0–50)" in gfm(md)
