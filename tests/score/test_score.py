"""ci-checks score on repositories written the way projects write them: bare, after `ci-checks init`, fully wired."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ci_checks.main import main
from ci_checks.scorecard.rubric import SECTIONS, TESTS

KIT = "octo/ci-checks"
RELEASE = """\
name: release
on:
  push:
    tags: ["v*"]
permissions: {}
jobs:
  rollback:
    runs-on: ubuntu-latest
    timeout-minutes: 20
    permissions:
      contents: read # check out the repository with its tags
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          fetch-depth: 0
          persist-credentials: false
      - uses: octo/ci-checks/actions/setup@v0.2.0
      - uses: octo/ci-checks/actions/rollback@v0.2.0
        with:
          install-ci-checks: "false"
"""
NIGHTLY = """\
name: nightly
on:
  schedule:
    - cron: "0 3 * * *"
permissions: {}
jobs:
  replay:
    uses: ./.github/workflows/replay.yml
    permissions:
      contents: read # check out the repository
"""
REPLAY = """\
name: replay (reusable)
on:
  workflow_call:
permissions: {}
jobs:
  rerun:
    runs-on: [self-hosted, gpu]
    timeout-minutes: 120
    permissions:
      contents: read # check out the repository
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credentials: false
      - run: |
          pip install "ci-checks[torch,dvc] @ git+https://github.com/octo/ci-checks@v0.2.0"
          ci-checks rerun --run baseline
"""
DATA = """\
name: data
on: [pull_request]
permissions: {}
jobs:
  data:
    runs-on: ubuntu-latest
    timeout-minutes: 10
    permissions:
      contents: read # check out the repository
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credentials: false
      - run: python -m pip install pytest && python -m ci_checks data-check --format github
"""
WIRED_CONFIG = """
[tool.ci-checks.metrics."latency_ms"]
direction = "lower"

[tool.ci-checks.score.manual]
data-5 = "reviews/privacy.md"
model-3 = "reviews/tuning.md"
"""


@pytest.fixture
def repo(tmp_path: Path, git_repo: Any, compare_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    r = git_repo.init(tmp_path / "project")
    monkeypatch.chdir(r.root)
    return r


def score(*args: str, out: str = "score.json") -> tuple[int, dict[str, Any]]:
    rc = main(["score", "--output", out, *args])
    return rc, json.loads(Path(out).read_text()) if Path(out).exists() and rc != 2 else {}


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in doc["checks"][0]["figures"]["tests"]}


def automated(doc: dict[str, Any]) -> set[str]:
    return {i for i, t in by_id(doc).items() if t["status"] == "automated"}


def init(repo: Any, *, params: bool = True) -> None:
    """`ci-checks init` in a project that keeps its hyperparameters in params.yaml (with params=True)."""
    assert main(["init", "--kit-repo", KIT, "--kit-ref", "v0.2.0"]) == 0
    repo.commit({"params.yaml": "train:\n  lr: 0.01\n  epochs: 15\n"} if params else {}, message="adopt ci-checks")


def test_the_rubric_has_the_papers_28_tests() -> None:
    assert [sum(t.id.startswith(s + "-") for t in TESTS) for s in SECTIONS] == [7, 7, 7, 7]
    names = {t.name for t in TESTS}
    assert {"Feature expectations are captured in a schema", "Serving models can be rolled back"} <= names
    assert {"Training is reproducible", "Model specs are reviewed and submitted"} <= names


def test_a_bare_repository_scores_0(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    repo.commit({"train.py": "print('training')\n"})
    rc, doc = score()
    assert rc == 0
    assert doc["checks"][0]["figures"]["score"] == 0 and not automated(doc)
    out = capsys.readouterr().out
    assert "ML Test Score 0" in out and "no workflow runs rollback" in out


def test_after_init_the_pipelines_tiers_count(repo: Any) -> None:
    init(repo)
    rc, doc = score()
    assert rc == 0
    # ml-ci.yml's default tiers: lint, pytest, train-check, compare, report
    assert automated(doc) == {
        "data-7",
        "model-1",
        "infrastructure-1",
        "infrastructure-2",
        "infrastructure-4",
        "monitoring-5",
        "monitoring-7",
    }
    figures = doc["checks"][0]["figures"]
    assert figures["sections"] == {"data": 1, "model": 1, "infrastructure": 3, "monitoring": 2}
    assert figures["score"] == 1  # the lowest section
    assert "ci-checks-validate-config" in figures["hooks"]
    covered = by_id(doc)["infrastructure-2"]["covered_by"][0]
    assert "ml-ci.yml tier train-check" in covered and ".github/workflows/ml-ci.yml" in covered


def test_a_fully_wired_repository(repo: Any) -> None:
    init(repo)
    workflow = repo.path / ".github" / "workflows" / "ml-ci.yml"
    text = workflow.read_text()
    assert "uses: octo/ci-checks/.github/workflows/ml-ci.yml@v0.2.0" in text
    tiers = '["lint", "pytest", "train-check", "compare", "export-parity", "quality", "report"]'
    workflow.write_text(
        text.replace(
            "uses: octo/ci-checks/.github/workflows/ml-ci.yml@v0.2.0\n",
            f"uses: octo/ci-checks/.github/workflows/ml-ci.yml@v0.2.0\n    with:\n      tiers: '{tiers}'\n",
        )
    )
    with open(repo.path / "pyproject.toml", "a") as fh:
        fh.write(WIRED_CONFIG)
    repo.commit(
        {
            ".github/workflows/release.yml": RELEASE,
            ".github/workflows/nightly.yml": NIGHTLY,
            ".github/workflows/replay.yml": REPLAY,
            ".github/workflows/data.yml": DATA,
            ".github/dependabot.yml": "version: 2\nupdates: []\n",
            "reviews/privacy.md": "# Privacy review\n",
            "reviews/tuning.md": "# Sweep of 2026-11\n",
        }
    )
    rc, doc = score()
    assert rc == 0
    tests = by_id(doc)
    auto = automated(doc)
    assert {"infrastructure-7", "infrastructure-6", "model-6", "monitoring-1", "monitoring-4"} <= auto
    assert {"infrastructure-3", "monitoring-6", "data-1", "monitoring-2"} <= auto
    assert "actions/rollback" in tests["infrastructure-7"]["covered_by"][0]
    # the nightly workflow calls the repository's own reusable workflow, which runs rerun: followed, and scheduled
    assert "nightly.yml" in tests["monitoring-4"]["covered_by"][0]
    assert tests["data-5"]["status"] == tests["model-3"]["status"] == "manual"
    assert tests["data-5"]["points"] == 0.5
    assert tests["data-2"]["status"] == "missing"  # nothing in the kit performs it, and it was not declared
    sections = doc["checks"][0]["figures"]["sections"]
    assert sections == {"data": 2.5, "model": 2.5, "infrastructure": 6, "monitoring": 7}
    assert doc["checks"][0]["figures"]["score"] == min(sections.values())


def test_what_does_not_run_does_not_count(repo: Any) -> None:
    """A reusable workflow nobody calls, a job that only installs pytest, an unscheduled rerun: no points."""
    init(repo)
    repo.commit(
        {
            ".github/workflows/replay.yml": REPLAY,  # workflow_call only, and no caller
            ".github/workflows/data.yml": DATA.replace(" && python -m ci_checks data-check --format github", ""),
        }
    )
    rc, doc = score()
    assert rc == 0
    auto = automated(doc)
    assert "monitoring-4" not in auto and "infrastructure-3" not in auto and "data-1" not in auto
    assert by_id(doc)["monitoring-6"]["missing"].startswith("compare runs, but no metric policy")


def test_the_change_against_the_base_is_reported(repo: Any, tmp_path: Path) -> None:
    init(repo)
    base = repo.git("rev-parse", "HEAD").strip()
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({".github/workflows/release.yml": RELEASE, ".github/dependabot.yml": "version: 2\nupdates: []\n"})
    rc, doc = score("--base", base)
    assert rc == 0
    figures = doc["checks"][0]["figures"]
    assert figures["base_score"] == 1 and figures["score"] == 1
    assert set(figures["gained"]) == {"infrastructure-7", "monitoring-1"} and figures["lost"] == []
    assert figures["base_sections"]["infrastructure"] == 3 and figures["sections"]["infrastructure"] == 4
    report = tmp_path / "report.md"
    assert main(["report", "score.json", "--output", str(report)]) == 0
    text = report.read_text()
    assert "**ML Test Score**: 1 (data 1, model 1, infrastructure 4, monitoring 3), base 1 (+0)" in text
    assert "newly covered: Serving models can be rolled back" in text


def test_min_score_fails_below_it(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    init(repo)
    assert main(["score", "--min-score", "1"]) == 0
    assert main(["score", "--min-score", "2"]) == 1
    assert "below --min-score 2" in capsys.readouterr().err


def test_json_format_prints_the_results_document(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    init(repo)
    assert main(["score", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "score" and len(doc["checks"][0]["figures"]["tests"]) == 28


@pytest.mark.parametrize(
    "files, args, expected",
    [
        pytest.param(
            {".github/workflows/ci.yml": "jobs:\n  a: [unclosed\n"}, [], "ci.yml: not valid YAML", id="bad-yaml"
        ),
        pytest.param(
            {".pre-commit-config.yaml": "repos:\n - repo: x\n  hooks: [\n"},
            [],
            ".pre-commit-config.yaml: not valid YAML",
            id="bad-pre-commit",
        ),
        pytest.param(
            {".github/workflows/ci.yml": "- just\n- a list\n"}, [], "a workflow must be a YAML mapping", id="list"
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": "on: push\njobs:\n  x:\n    uses: octo/ci-checks/.github/workflows/"
                "ml-ci.yml@v1\n    with:\n      tiers: compare\n"
            },
            [],
            "is not a JSON list string",
            id="bad-tiers",
        ),
        pytest.param(
            {"pyproject.toml": '[tool.ci-checks.score.manual]\ndata-9 = "reviews/x.md"\n'},
            [],
            "unknown test 'data-9'",
            id="unknown-test",
        ),
        pytest.param(
            {"pyproject.toml": '[tool.ci-checks.score.manual]\ndata-2 = "reviews/none.md"\n'},
            [],
            "no such document",
            id="missing-document",
        ),
        pytest.param({}, ["--base", "no-such-branch"], "no such commit", id="unknown-base"),
        pytest.param({}, ["--min-score", "9"], "--min-score must be between 0 and 7", id="min-score"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    repo: Any, capsys: pytest.CaptureFixture[str], files: dict[str, str], args: list[str], expected: str
) -> None:
    repo.commit({"README.md": "x\n", **{k: textwrap.dedent(v) for k, v in files.items()}})
    assert main(["score", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_a_pull_request_cannot_raise_its_own_gate(repo: Any) -> None:
    """Manual declarations and metric policies added by the change count in its score, not in its --min-score gate."""
    init(repo)
    base = repo.git("rev-parse", "HEAD").strip()
    repo.git("checkout", "-q", "-b", "feature")
    manual = {f"data-{i}": "reviews/by-hand.md" for i in range(2, 7)} | {
        f"model-{i}": "reviews/by-hand.md" for i in (2, 3, 4, 5, 7)
    }
    with open(repo.path / "pyproject.toml", "a") as fh:
        fh.write("\n[tool.ci-checks.score.manual]\n" + "".join(f'{k} = "{v}"\n' for k, v in manual.items()))
        fh.write('\n[tool.ci-checks.metrics."latency_ms"]\ndirection = "lower"\n')
    repo.commit({"reviews/by-hand.md": "# Reviewed by hand\n", ".github/workflows/release.yml": RELEASE})
    rc, doc = score("--min-score", "2")
    assert rc == 0 and doc["checks"][0]["figures"]["score"] == 3
    rc, doc = score("--min-score", "2", "--base", base)
    assert rc == 1
    figures = doc["checks"][0]["figures"]
    assert figures["score"] == 3 and figures["gate_score"] == 1
    assert "judged with the base's configuration" in doc["checks"][0]["findings"][0]["message"]


def test_score_runs_without_torch(repo: Any) -> None:
    """actions/score and the score tier install ci-checks without torch: the command must not import it."""
    import subprocess
    import sys

    init(repo)
    code = "import sys\nfrom ci_checks.main import main\nrc = main(['score'])\nprint(rc, 'torch' in sys.modules)\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo.path, capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "0 False"


def test_a_workflow_started_only_by_hand_is_not_automation(repo: Any) -> None:
    init(repo)
    repo.commit({".github/workflows/release.yml": RELEASE.replace('push:\n    tags: ["v*"]', "workflow_dispatch:")})
    rc, doc = score()
    assert rc == 0 and "infrastructure-7" not in automated(doc)
    repo.commit({".github/workflows/release.yml": RELEASE})
    rc, doc = score()
    assert "infrastructure-7" in automated(doc)


def test_names_from_the_repository_cannot_forge_a_workflow_command(
    repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = RELEASE.replace("  rollback:\n", '  "x\\n::error::forged":\n')
    repo.commit({".github/workflows/release.yml": evil})
    assert main(["score"]) == 0
    out = capsys.readouterr().out
    assert "x\\n::error::forged" in out
    assert not any(line.startswith("::") for line in out.splitlines())


def test_reviewed_model_specs_need_a_params_file(repo: Any) -> None:
    init(repo, params=False)
    rc, doc = score()
    assert "model-1" not in automated(doc)
    assert "no params file it diffs" in by_id(doc)["model-1"]["missing"]
    repo.commit({"dvc.yaml": "stages:\n  train:\n    cmd: python train.py\n    params:\n      - train\n"})
    rc, doc = score()
    assert "model-1" in automated(doc)


def test_a_command_set_up_but_run_by_no_workflow_is_named(repo: Any) -> None:
    init(repo)
    with open(repo.path / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.ci-checks.rollback]\nartifact = "models/model.pt"\n')
    repo.commit()
    rc, doc = score()
    assert (
        "rollback is set up in [tool.ci-checks]: only a workflow is missing"
        in by_id(doc)["infrastructure-7"]["missing"]
    )
