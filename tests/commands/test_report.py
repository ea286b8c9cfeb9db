"""`ci-checks report`: one Markdown document from all results, rendered as GitHub renders it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from ci_checks.commands import report as report_cmd
from ci_checks.render import render_json
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
    assert md.splitlines()[2].startswith(":x: **1 check(s) failed: parameter-updates")
    assert "requires_grad=False" in md


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
