"""ci-checks compare end to end, on real temporary git repositories: output formats, exit codes, bad input.

The policies and verdicts, the metric sources and the base revision have their own tests in tests/compare/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci_checks.main import main
from ci_checks.render import render_json
from ci_checks.results import CheckResult, Report
from results_helpers import CONFIG, check, verdicts

pytestmark = pytest.mark.usefixtures("compare_env")


# ---------------------------------------------------------------- output and exit codes


def test_no_regression_passes_and_the_text_output_says_why(
    compare_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    p = compare_project(
        {"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.912}},
        {"metrics.json": json.dumps({"accuracy": 0.915})},
    )
    assert main(["compare", "--head-dir", str(p.root)]) == 0
    out, err = capsys.readouterr()
    assert "metrics.json:accuracy 0.912 -> 0.915 (+0.3%), within-noise (tolerance 0.00912)" in out
    assert "working tree vs main" in err and "1 within-noise" in err


@pytest.mark.parametrize(
    ("fail_on", "rc"),
    [
        pytest.param("never", 0, id="never"),
        pytest.param("regressed", 0, id="regressed-ignores-missing"),
        pytest.param("missing", 1, id="missing"),
        pytest.param("any", 1, id="any"),
    ],
)
def test_fail_on(compare_project: Any, fail_on: str, rc: int) -> None:
    p = compare_project(
        {"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9, "old": 1.0}},
        {"metrics.json": json.dumps({"accuracy": 0.9})},
    )
    got, doc = p.compare("--fail-on", fail_on)
    assert got == rc and doc["subject"]["fail_on"] == fail_on


def test_fail_on_from_config_and_never_turns_errors_into_warnings(compare_project: Any) -> None:
    config = CONFIG + 'fail-on = "never"\n'
    p = compare_project(
        {"pyproject.toml": config, "metrics.json": {"loss": 0.1}}, {"metrics.json": json.dumps({"loss": 0.5})}
    )
    rc, doc = p.compare()
    assert rc == 0 and verdicts(doc) == {"metrics.json:loss": "regressed"}
    assert check(doc, "metrics.json:loss")["status"] == "warn"


def test_github_format_annotates_the_regression(
    compare_project: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    p = compare_project(
        {"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9}}, {"metrics.json": json.dumps({"accuracy": 0.8})}
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["compare", "--head-dir", str(p.root), "--format", "github", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(
        "::error file=metrics.json,title=ci-checks metrics.json%3Aaccuracy::metrics.json:accuracy "
        "regressed: 0.9 -> 0.8 (-11.1%25)"
    )  # % escaped as the toolkit does
    assert "metrics.json:accuracy" in summary.read_text()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"metrics.json": '{"accuracy": 0.9,}'},
            "ci-checks: error: metrics.json: invalid JSON (Expecting property name enclosed in double quotes "
            "at line 1 column 18); fix the file or the step that writes it",
            id="json",
        ),
        pytest.param(
            {"pyproject.toml": '[tool.ci-checks.compare]\nfiles = ["m.yaml"]\n', "m.yaml": "a: [1, 2\n"},
            "ci-checks: error: m.yaml: invalid YAML (expected ',' or ']', but got '<stream end>' at line 2 "
            "column 1); fix the file or the step that writes it",
            id="yaml",
        ),
        pytest.param(
            {"pyproject.toml": '[tool.ci-checks.compare]\nfiles = ["m.csv"]\n', "m.csv": "a,b\n1,2,3\n"},
            "ci-checks: error: m.csv: invalid CSV (line 2 has more fields than the header's 2); fix the file "
            "or the step that writes it",
            id="csv",
        ),
    ],
)
def test_malformed_metrics_file_exits_2_naming_it(
    compare_project: Any, capsys: pytest.CaptureFixture[str], files: dict[str, str], expected: str
) -> None:
    p = compare_project({"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9}}, files)
    assert p.compare()[0] == 2
    assert capsys.readouterr().err == expected + "\n"


def test_malformed_file_on_the_base_side_names_the_revision(
    compare_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    p = compare_project({"pyproject.toml": CONFIG, "metrics.json": "{oops"}, {"metrics.json": json.dumps({"a": 1})})
    assert p.compare()[0] == 2
    assert capsys.readouterr().err.startswith("ci-checks: error: metrics.json at main (")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            '[tool.ci-checks.compare]\nfail_on = "any"\n',
            "unknown key 'fail_on'; did you mean 'fail-on'?",
            id="unknown-key",
        ),
        pytest.param(
            '[tool.ci-checks.metrics.loss]\ndirection = "down"\n',
            'direction must be "higher" or "lower" (which is better), got \'down\'',
            id="direction",
        ),
        pytest.param("[tool.ci-checks.metrics]\nloss = 0.1\n", "must be a table", id="not-a-table"),
        pytest.param(
            '[tool.ci-checks.compare]\nfiles = ["nowhere/*.json"]\n',
            "'nowhere/*.json' matches no file in",
            id="files-match-nothing",
        ),
    ],
)
def test_bad_configuration_exits_2(
    compare_project: Any, capsys: pytest.CaptureFixture[str], config: str, expected: str
) -> None:
    p = compare_project({"pyproject.toml": config, "metrics.json": {"loss": 0.1}}, {})
    assert p.compare()[0] == 2
    assert expected in capsys.readouterr().err


def test_not_a_git_repository_and_nothing_to_compare(
    tmp_path: Path, git_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo(tmp_path / "a").write({"metrics.json": "{}", "pyproject.toml": CONFIG})
    assert main(["compare", "--head-dir", str(tmp_path / "a")]) == 2
    assert "is not in a git repository" in capsys.readouterr().err
    git_repo.init(tmp_path / "a").write({"pyproject.toml": ""})
    assert main(["compare", "--head-dir", str(tmp_path / "a")]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_only_one_training_results_file_is_bad_input(
    compare_project: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = compare_project({"pyproject.toml": CONFIG, "metrics.json": {"a": 1.0}}, {})
    head = tmp_path / "pr.json"
    head.write_text(render_json(Report(command="train-check", checks=[CheckResult("memorization")])))
    assert p.compare("--head-results", str(head))[0] == 2
    assert "pass both --base-results and --head-results" in capsys.readouterr().err


def test_an_error_that_quotes_a_hostile_file_name_stays_one_line(
    compare_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = '[tool.ci-checks.compare]\nfiles = ["metrics/*.json"]\n'
    hostile = "metrics/x\n::error title=forged::y.json"
    p = compare_project({"pyproject.toml": config, "metrics/a.json": {"acc": 0.9}}, {hostile: "{oops"})
    assert p.compare()[0] == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x\\n::error title=forged::y.json: invalid JSON" in err
