"""rerun: replay a recorded run of the example (real git, real DVC with a local remote) on CPU."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_checks.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, git_repo: Any) -> Path:
    """The example as a repository with one recorded run, tagged v1, its data pushed to a local DVC remote."""
    repo = tmp_path_factory.mktemp("rerun") / "project"
    shutil.copytree(
        ROOT / "examples",
        repo,
        ignore=shutil.ignore_patterns("data", "models", "metrics", "plots", "__pycache__", "tests", "*.py[co]"),
    )
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["n_samples"] = 450
    params["train"]["epochs"] = 6
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / ".gitignore").write_text(".ci-checks/\n__pycache__/\n")
    project = git_repo.init(repo)
    dvc = [sys.executable, "-m", "dvc"]
    project.run(*dvc, "init", "-q")
    project.run(*dvc, "remote", "add", "-d", "local", str(repo.parent / "remote"))
    project.commit(message="pipeline without a recorded run")
    project.git("tag", "unrecorded")
    project.run(*dvc, "repro", "-q")
    project.run(*dvc, "push", "-q")
    project.commit(message="record run v1")
    project.git("tag", "v1")
    config = (
        '[tool.ci-checks.rerun]\nruns = [{name = "baseline", ref = "v1"}]\n'
        '[tool.ci-checks.metrics."*accuracy"]\nabs-tol = 0.02\n'
        '[tool.ci-checks.metrics."*loss"]\nabs-tol = 0.05\n'
    )
    project.commit({"pyproject.toml": config}, "configure the rerun")
    return repo


def rerun(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, dict]:
    monkeypatch.chdir(repo)
    out = repo.parent / "rerun.json"
    if out.exists():
        out.unlink()
    code = main(["rerun", *args, "--format", "json", "--output", str(out), "--device", "cpu", "--quiet"])
    return code, (json.loads(out.read_text()) if out.exists() else {})


def test_replay_of_the_recorded_run_passes_with_the_same_code(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, git_repo: Any
) -> None:
    code, doc = rerun(recorded, monkeypatch)
    assert code == 0, doc
    runs = [c for c in doc["checks"] if c["figures"].get("kind") == "rerun"]
    assert runs[0]["check"] == "rerun baseline" and runs[0]["figures"]["returncode"] == 0
    metrics = {c["check"]: c["figures"] for c in doc["checks"] if c["figures"].get("kind") == "metric"}
    assert metrics["baseline: metrics/eval.json:accuracy"]["verdict"] in ("unchanged", "within-noise")
    assert any(c["check"].startswith("baseline: curve plots/train_loss.csv") for c in doc["checks"])
    assert not (recorded / ".ci-checks" / "rerun" / "baseline").exists()  # workspace cleaned up
    assert "worktree" not in git_repo(recorded).git("worktree", "list").split("\n", 1)[-1]


def test_a_deliberate_regression_in_the_code_fails_with_the_figures(
    recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = recorded / "src" / "train.py"
    original = train.read_text()
    train.write_text(
        original.replace('params["lr"], params["weight_decay"]', 'params["lr"] * 0.01, params["weight_decay"]')
    )
    try:
        code, doc = rerun(recorded, monkeypatch, "--run", "baseline")
    finally:
        train.write_text(original)
    assert code == 1
    summary = next(c for c in doc["checks"] if c["check"] == "rerun baseline")
    assert "regressed" in summary["findings"][0]["message"]
    accuracy = next(c for c in doc["checks"] if c["check"] == "baseline: metrics/eval.json:accuracy")["figures"]
    assert accuracy["verdict"] == "regressed" and accuracy["head"] < accuracy["base"] - 0.02


def test_interrupted_replay_resumes_from_its_checkpoints(recorded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, doc = rerun(recorded, monkeypatch, "--ref", "v1", "--timeout-minutes", "0.02")
    assert code == 1
    assert "did not finish" in doc["checks"][0]["findings"][0]["message"]
    assert (recorded / ".ci-checks" / "rerun" / "v1").is_dir()  # kept for --resume
    code, doc = rerun(recorded, monkeypatch, "--ref", "v1", "--resume")
    assert code == 0, doc
    assert doc["checks"][0]["figures"]["resumed"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--ref", "v9"], "git ref 'v9' does not exist here", id="missing-ref"),
        pytest.param(["--ref", "unrecorded"], "has no recorded metrics", id="no-recorded-metrics"),
        pytest.param(["--run", "nope"], "no recorded run named 'nope'", id="unknown-run"),
        pytest.param(
            ["--ref", "v1", "--command", "no-such-program-xyz run"], "names no program found on PATH", id="no-program"
        ),
        pytest.param(["--ref", "v1", "--command", "python 'unclosed"], "fix its quoting", id="bad-quoting"),
    ],
)
def test_bad_input_exits_2(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _ = rerun(recorded, monkeypatch, *args)
    assert code == 2
    assert message in capsys.readouterr().err


def test_unreachable_dvc_remote_exits_2(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], git_repo: Any
) -> None:
    cache = recorded / ".dvc" / "cache"
    moved = recorded.parent / "cache-moved"
    shutil.move(cache, moved)
    git_repo(recorded).run(
        sys.executable, "-m", "dvc", "remote", "modify", "--local", "local", "url", "/nonexistent/remote"
    )
    try:
        code, _ = rerun(recorded, monkeypatch, "--ref", "v1")
    finally:
        (recorded / ".dvc" / "config.local").unlink()
        shutil.rmtree(cache, ignore_errors=True)
        shutil.move(moved, cache)
    assert code == 2
    assert "cannot fetch the data recorded at the ref" in capsys.readouterr().err


def test_list_prints_the_matrix(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(recorded)
    assert main(["rerun", "--list"]) == 0
    assert json.loads(capsys.readouterr().out) == ["baseline"]
