"""The base side: the merge-base with the default branch, fetched in shallow clones, a PR's base branch, a first
run without a baseline, and compare results saved on main as the baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci_checks.main import main
from results_helpers import CONFIG, check, verdicts

pytestmark = pytest.mark.usefixtures("compare_env")


# ---------------------------------------------------------------- no git baseline


def test_first_run_without_a_baseline_passes_and_says_so(
    compare_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    p = compare_project({"pyproject.toml": CONFIG}, {"metrics.json": json.dumps({"accuracy": 0.9, "loss": 0.2})})
    assert main(["compare", "--head-dir", str(p.root), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["subject"]["first_run"] is True and set(verdicts(doc).values()) == {"new"}
    assert "no baseline on main yet: 2 metrics recorded, nothing to compare" in err


def test_baseline_from_results_json_of_main(compare_project: Any, tmp_path: Path, git_repo: Any) -> None:
    """Repositories that do not commit metrics: main's compare results are the baseline."""
    p = compare_project({"pyproject.toml": CONFIG, "plots.csv": "step,loss\n0,1\n1,0.5\n"})
    p.git("checkout", "-q", "main")
    p.write({"metrics.json": json.dumps({"accuracy": [0.9, 0.91, 0.905], "loss": 0.3})})
    saved = tmp_path / "main-compare.json"
    config = CONFIG + 'curves = ["plots.csv"]\n'
    p.write({"pyproject.toml": config})
    assert main(["compare", "--head-dir", str(p.root), "--output", str(saved), "--quiet"]) == 0
    # The branch's run: another machine, not even a git checkout.
    work = tmp_path / "work"
    git_repo(work).write(
        {
            "pyproject.toml": config,
            "metrics.json": json.dumps({"accuracy": [0.87, 0.88, 0.875], "loss": 0.3}),
            "plots.csv": "step,loss\n0,1\n1,0.6\n",
        },
    )
    out = tmp_path / "pr.json"
    rc = main(["compare", "--head-dir", str(work), "--base-metrics-json", str(saved), "--output", str(out), "--quiet"])
    doc = json.loads(out.read_text())
    assert rc == 1 and verdicts(doc) == {"metrics.json:accuracy": "regressed", "metrics.json:loss": "unchanged"}
    assert doc["subject"]["base"] == {
        "ref": str(saved),
        "sha": p.git("rev-parse", "HEAD").strip(),
        "source": "results-json",
    }
    assert doc["subject"]["head"]["sha"] is None
    assert check(doc, "curve plots.csv")["series"]["base:loss"] == [1.0, 0.5]


# ---------------------------------------------------------------- base revisions and shallow clones


def _origin(tmp_path: Path, git_repo: Any) -> Path:
    """An upstream with main (3 commits) and a branch `feature` that changed the metrics."""
    p = git_repo.init(tmp_path / "origin")
    p.commit({"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9}}, "m1")
    p.commit({"metrics.json": {"accuracy": 0.91}}, "m2")
    p.git("checkout", "-q", "-b", "feature")
    p.commit({"metrics.json": {"accuracy": 0.85}}, "f1")
    p.commit({"notes.txt": "x"}, "f2")
    p.git("checkout", "-q", "main")
    p.commit({"metrics.json": {"accuracy": 0.99}}, "m3: main moved on after the branch")
    return p.root


def _clone(tmp_path: Path, git_repo: Any, *args: str) -> Any:
    git_repo(tmp_path).git(
        "clone", "-q", *args, "--branch", "feature", f"file://{_origin(tmp_path, git_repo)}", "clone"
    )
    return git_repo(tmp_path / "clone")


def test_default_base_is_the_merge_base_with_the_remote_default_branch(
    tmp_path: Path, git_repo: Any, compare_project: Any
) -> None:
    clone = _clone(tmp_path, git_repo)
    rc, doc = compare_project.at(clone.root).compare()
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert (figures["base"], figures["head"]) == (0.91, 0.85)  # the fork point, not main's tip (0.99)
    assert doc["subject"]["base"]["ref"] == "origin/main"
    assert doc["subject"]["base"]["sha"] == clone.git("merge-base", "HEAD", "origin/main").strip()
    rc, doc = compare_project.at(clone.root).compare("--base", "origin/main")  # an explicit ref is used as it is
    assert check(doc, "metrics.json:accuracy")["figures"]["base"] == 0.99


def test_shallow_clone_fetches_the_base_branch_and_enough_history(
    tmp_path: Path, git_repo: Any, compare_project: Any
) -> None:
    clone = _clone(tmp_path, git_repo, "--depth", "1")
    assert clone.git("rev-parse", "--is-shallow-repository").strip() == "true"
    rc, doc = compare_project.at(clone.root).compare()
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert (figures["base"], figures["head"], figures["verdict"]) == (0.91, 0.85, "regressed") and rc == 1


def test_shallow_clone_without_fetching_names_the_fetch_to_add(
    tmp_path: Path, git_repo: Any, compare_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    clone = _clone(tmp_path, git_repo, "--depth", "1")
    clone.write({"pyproject.toml": CONFIG + "fetch-depth = 0\n"})
    assert compare_project.at(clone.root).compare()[0] == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "actions/checkout with fetch-depth: 0, or git fetch origin main --depth=50" in err


def test_missing_base_ref_exits_2_naming_the_fetch(compare_project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    p = compare_project({"pyproject.toml": CONFIG, "metrics.json": {"a": 1}}, {})
    assert p.compare("--base", "release-9")[0] == 2
    err = capsys.readouterr().err
    assert err == (
        "ci-checks: error: base ref 'release-9' is not in this clone (a shallow or single-branch "
        "checkout?); fetch it: actions/checkout with fetch-depth: 0, or git fetch origin release-9 "
        "--depth=50\n"
    )


def test_pull_request_base_branch_from_github_base_ref(compare_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    p = compare_project({"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9}})
    p.git("checkout", "-q", "-b", "release", "main")
    p.commit({"metrics.json": {"accuracy": 0.8}}, "release branch")
    p.git("checkout", "-q", "feature")
    p.write({"metrics.json": json.dumps({"accuracy": 0.85})})
    assert check(p.compare()[1], "metrics.json:accuracy")["figures"]["base"] == 0.9  # main
    monkeypatch.setenv("GITHUB_BASE_REF", "release")  # set by GitHub Actions on pull_request events
    rc, doc = p.compare()
    assert doc["subject"]["base"]["ref"] == "release"
    # The merge-base of the branch with release is main's commit: release's own change is not this PR's doing.
    assert check(doc, "metrics.json:accuracy")["figures"]["base"] == 0.9
