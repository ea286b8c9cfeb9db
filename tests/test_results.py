"""Results as data and the renderers: text, versioned JSON, GitHub annotations, step summary and outputs."""

from __future__ import annotations

import io
import json
import math

import pytest

from ci_checks._errors import UserError
from ci_checks.main import main
from ci_checks.render import GITHUB_MAX_ANNOTATIONS, emit, render_github, render_json, render_markdown, render_text
from ci_checks.results import SCHEMA, SCHEMA_VERSION, CheckResult, Location, Report, load_report


def make_report() -> Report:
    passed = CheckResult("loss-at-init", summary="initial loss 1.1", duration_s=0.02, figures={"initial_loss": 1.1})
    failed = CheckResult("memorization", summary="did not memorize | ever", series={"loss": [1.0, math.nan]})
    failed.add(
        "error",
        "memorization: did not memorize one batch",
        location=Location("specs/ci_spec.py", 12),
        steps=60,
        final=math.inf,
    )
    failed.add("warning", "memorization: slow", location=Location("specs/ci_spec.py"))
    skipped = CheckResult("checkpoint", skipped=True, summary="skipped: the training step raised (reported above)")
    return Report(command="train-check", checks=[passed, failed, skipped], subject={"spec": "specs/ci_spec.py:spec"})


def test_status_and_exit_code():
    report = make_report()
    assert [c.status for c in report.checks] == ["pass", "fail", "skip"]
    assert report.status == "fail" and report.exit_code == 1
    assert Report("train-check", checks=[CheckResult("a"), CheckResult("b", skipped=True)]).exit_code == 0
    warned = CheckResult("a")
    warned.add("warning", "careful")
    assert Report("train-check", checks=[warned]).status == "warn"
    assert Report("train-check").status == "skip"


def test_text():
    text = render_text(make_report())
    assert text.splitlines() == [
        "PASS  loss-at-init         initial loss 1.1  (0.02s)",
        "FAIL  memorization         did not memorize | ever",
        "      specs/ci_spec.py:12: error: memorization: did not memorize one batch",
        "      specs/ci_spec.py: warning: memorization: slow",
        "SKIP  checkpoint           skipped: the training step raised (reported above)",
        "train-check: FAIL - 1 passed, 0 warned, 1 failed, 1 skipped in 0.0s",
    ]


def test_json_schema_fields():
    doc = json.loads(render_json(make_report()))
    assert doc["schema"] == SCHEMA == "ci-checks/results"
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["tool"]["name"] == "ci-checks" and doc["tool"]["version"]
    assert set(doc) == {
        "schema",
        "schema_version",
        "tool",
        "command",
        "created",
        "status",
        "exit_code",
        "subject",
        "environment",
        "checks",
    }
    assert (doc["command"], doc["status"], doc["exit_code"]) == ("train-check", "fail", 1)
    check = doc["checks"][1]
    assert set(check) == {"check", "status", "summary", "duration_s", "figures", "series", "findings"}
    finding = check["findings"][0]
    assert finding == {
        "check": "memorization",
        "severity": "error",
        "message": "memorization: did not memorize one batch",
        "location": {"file": "specs/ci_spec.py", "line": 12},
        "details": {"steps": 60, "final": "inf"},
    }
    assert check["series"]["loss"] == [1.0, "nan"]  # strict JSON: no NaN literals


def test_json_round_trips(tmp_path):
    report = make_report()
    path = tmp_path / "results.json"
    path.write_text(render_json(report))
    loaded = load_report(str(path))
    assert loaded.to_dict() == Report.from_dict(report.to_dict()).to_dict()
    assert [(c.check, c.status) for c in loaded.checks] == [(c.check, c.status) for c in report.checks]
    assert loaded.checks[1].findings[0].location == Location("specs/ci_spec.py", 12)
    assert loaded.created == report.created and loaded.exit_code == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "results file not found", id="missing"),
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param("[1, 2]", "expected a JSON object", id="not-an-object"),
        pytest.param('{"schema": "other"}', "not a ci-checks results file", id="other-schema"),
        pytest.param(
            json.dumps({"schema": SCHEMA, "schema_version": SCHEMA_VERSION + 1}), "upgrade ci-checks", id="newer-schema"
        ),
    ],
)
def test_load_report_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_report(str(path))


def test_github_annotations_escape_like_actions_toolkit():
    result = CheckResult("memorization")
    result.add("error", "100% wrong\r\nsecond line", location=Location("dir,with:odd%name.py", 7))
    out = render_github(Report("train-check", checks=[result])).splitlines()
    assert out[0] == (
        "::error file=dir%2Cwith%3Aodd%25name.py,line=7,title=ci-checks memorization::100%25 wrong%0D%0Asecond line"
    )


def test_github_annotation_without_location_or_line():
    result = CheckResult("train-mode")
    result.add("warning", "a: b, c")
    result.add("notice", "fyi", location=Location("spec.py"))
    out = render_github(Report("train-check", checks=[result])).splitlines()
    assert out[:2] == [
        "::warning title=ci-checks train-mode::a: b, c",
        "::notice file=spec.py,title=ci-checks train-mode::fyi",
    ]


def test_github_caps_annotations_most_severe_first():
    result = CheckResult("parameter-updates")
    for i in range(12):
        result.add("warning", f"warning {i}")
    for i in range(3):
        result.add("error", f"error {i}")
    lines = render_github(Report("train-check", checks=[result])).splitlines()
    annotations = [line for line in lines if line.startswith("::")]
    assert len(annotations) == GITHUB_MAX_ANNOTATIONS + 1 == 11
    assert [a.split("::")[1].split()[0] for a in annotations[:3]] == ["error"] * 3
    assert annotations[-1] == "::notice::5 more findings are in the step summary"
    assert lines[-1].startswith("train-check: FAIL")  # the text report follows for the log


def test_markdown_summary():
    md = render_markdown(make_report())
    lines = md.splitlines()
    assert lines[0] == "### ci-checks train-check: :x: fail"
    assert "| `memorization` | :x: fail | did not memorize \\| ever | 0.00s |" in lines
    assert "- `memorization` (error): memorization: did not memorize one batch" in lines


def test_emit_github_appends_summary_and_outputs(tmp_path):
    summary, outputs = tmp_path / "summary.md", tmp_path / "output"
    summary.write_text("earlier step\n")
    stream = io.StringIO()
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)}
    emit(make_report(), fmt="github", output=str(tmp_path / "r.json"), stream=stream, github_env=env)
    assert summary.read_text().startswith("earlier step\n### ci-checks train-check")
    assert outputs.read_text() == f"status=fail\nexit-code=1\nresults={tmp_path / 'r.json'}\n"
    assert stream.getvalue().startswith("::error file=specs/ci_spec.py,line=12,")


def test_emit_github_without_runner_files():
    stream = io.StringIO()
    emit(make_report(), fmt="github", output=None, stream=stream, github_env={})
    assert stream.getvalue().startswith("::error")


def test_emit_json_with_output_prints_text(tmp_path):
    stream = io.StringIO()
    emit(make_report(), fmt="json", output=str(tmp_path / "r.json"), stream=stream)
    assert stream.getvalue().startswith("PASS  loss-at-init")
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "fail"


def test_emit_unwritable_output_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot write results"):
        emit(make_report(), fmt="text", output=str(tmp_path / "no" / "such" / "dir.json"), stream=io.StringIO())


# ------------------------------------------------------------------ through the CLI


@pytest.fixture
def spec(write_spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    return write_spec("""
def lr_zero():
    spec = good()
    spec["optimizer_factory"] = lambda params: torch.optim.SGD(params, lr=0.0)
    return spec
""")


def test_cli_json_to_stdout(spec, capsys):
    assert main(["train-check", "--spec", f"{spec}:lr_zero", "--format", "json", "--quiet"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == SCHEMA and doc["status"] == "fail" and doc["exit_code"] == 1
    assert doc["subject"]["spec"] == f"{spec}:lr_zero"
    assert doc["subject"]["task"] == "classification, 3 classes"
    assert [c["check"] for c in doc["checks"]][:2] == ["parameter-updates", "loss-at-init"]
    finding = doc["checks"][0]["findings"][0]
    assert finding["location"] == {"file": "ci_spec.py", "line": finding["location"]["line"]}
    assert Report.from_dict(doc).to_dict()["checks"] == doc["checks"]


def test_cli_output_writes_json_and_prints_text(spec, capsys, tmp_path):
    out_file = tmp_path / "results.json"
    assert main(["train-check", "--spec", f"{spec}:good", "--output", str(out_file), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("train-check: PASS")
    assert load_report(str(out_file)).status == "pass"


def test_cli_github(spec, capsys, tmp_path, monkeypatch):
    summary, outputs = tmp_path / "summary.md", tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    argv = ["train-check", "--spec", f"{spec}:lr_zero", "--format", "github", "--output", "r.json", "--quiet"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    annotations = [line for line in out.splitlines() if line.startswith("::")]
    assert annotations[0].startswith("::error file=ci_spec.py,line=")
    assert (
        ",title=ci-checks parameter-updates::parameter-updates: did not change after one step: 0.weight"
        in annotations[0]
    )
    assert len(annotations) == 3  # one per cause (4 parameters in one), loss-decreases, memorization
    assert summary.read_text().startswith("### ci-checks train-check: :x: fail")
    assert outputs.read_text() == "status=fail\nexit-code=1\nresults=r.json\n"


def test_untrusted_text_cannot_start_a_line_of_its_own():
    """A check name, summary, message or path with line breaks stays on its line: no forged workflow command."""
    forged = "x\n::error title=forged::y\r::warning::z\u2028::notice::w"
    result = CheckResult(forged, summary=forged)
    result.add("error", forged, location=Location("::error::evil.py", 3))
    report = Report(command="compare", checks=[result])
    for text, expected in ((render_text(report), 0), (render_github(report), 1)):
        lines = text.split("\n")  # as the runner reads them
        ours = [line for line in lines if line.startswith("::error file=")]
        assert len(ours) == expected
        assert all("%0A::error title=forged::y%0D::warning::z" in line for line in ours)
        assert [line for line in lines if line.lstrip().startswith("::") and line not in ours] == []
    assert "./::error::evil.py:3: error: x\\n::error title=forged::y\\r::warning::z\\u2028::notice::w" in render_text(
        report
    )


def test_markdown_escaping_keeps_names_whole_and_inert():
    from ci_checks.render import md_code, md_text

    assert md_code("a`b``c") == "```a`b``c```"
    assert md_code("`x`") == "`` `x` ``"
    assert md_code("a|b", table=True) == "`a\\|b`"
    assert md_code("x" * 100, limit=20) == "`" + "x" * 13 + "…" + "x" * 6 + "`"
    assert md_text("@octocat #1 <b>") == "@\u2060octocat \\#\u20601 \\<b\\>"
    assert md_text("https://x.example www.x.example") == "https:\u2060//x.example www\u2060.x.example"
    assert md_text("a\nb") == "a\\\\nb"
