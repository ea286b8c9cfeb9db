"""The example project's own tests: the pipeline stages run and produce sane metrics; training passes ci-checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

EXAMPLE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def project(tmp_path):
    """A copy of the example with a short training budget, so tests never write into the repository."""
    dst = tmp_path / "example"
    # Without the committed outputs and DVC state: the tests make their own (and `dvc init` their own .dvc).
    skip = ("data", "models", "metrics", "plots", "__pycache__", ".dvc", ".dvcignore", "dvc.lock", "results")
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns(*skip))
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["prepare"]["n_samples"] = 600
    params["train"]["epochs"] = 8
    (dst / "params.yaml").write_text(yaml.safe_dump(params))
    return dst


def _stage(project, script):
    return subprocess.run([sys.executable, f"src/{script}.py"], cwd=project, capture_output=True, text=True, check=True)


def test_pipeline_stages_write_metrics_and_plots(project):
    _stage(project, "prepare")
    _stage(project, "train")
    _stage(project, "evaluate")
    evaluation = json.loads((project / "metrics" / "eval.json").read_text())
    training = json.loads((project / "metrics" / "train.json").read_text())
    assert set(evaluation) == {"loss", "accuracy"}
    assert evaluation["accuracy"] > 0.6  # 3 classes: chance is 0.33
    assert training["loss"] < 1.0
    curve = (project / "plots" / "train_loss.csv").read_text().splitlines()
    assert curve[0] == "epoch,loss" and len(curve) == 1 + 8


def test_dvc_yaml_names_every_script_and_output(project):
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "train", "evaluate"]
    for stage in stages.values():
        script = stage["cmd"].split()[-1]
        assert (project / script).is_file()
        assert script in stage["deps"]


@pytest.mark.train_check
def test_training_passes_ci_checks(train_check):
    report = train_check.assert_trains(os.path.join(EXAMPLE, "ci_spec.py") + ":training_spec")
    assert report.status == "pass"


def test_dvc_repro_runs_the_pipeline_and_reports_metrics(project):
    """The real DVC pipeline, in a throwaway git repository: repro, then metrics and params as DVC sees them."""
    dvc = [sys.executable, "-m", "dvc"]
    # Stages call `python`: the interpreter running the tests, with its torch.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {
        **os.environ,
        "PATH": path,
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.com",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.com",
    }

    def run(*cmd):
        return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, check=True)

    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    run(*dvc, "repro")
    metrics = json.loads(run(*dvc, "metrics", "show", "--json").stdout)
    shown = next(iter(metrics.values()))["data"]
    assert set(shown) == {"metrics/train.json", "metrics/eval.json"}
    assert shown["metrics/eval.json"]["data"]["accuracy"] > 0.6
    assert "train:" in (project / "dvc.lock").read_text()
    status = run(*dvc, "status").stdout
    assert "up to date" in status
