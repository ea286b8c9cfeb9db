"""Metric sources: configured files (CSV, YAML, dvclive), dvc.yaml with DVC's own answers, train-check results,
and the registry: a new source is one class in SOURCES."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ci_checks.compare import sources
from ci_checks.compare.files import Metric
from ci_checks.compare.sources import Context, Readings
from ci_checks.compare.trees import Tree
from ci_checks.render import render_json
from ci_checks.results import CheckResult, Report
from results_helpers import CONFIG, check, verdicts

pytestmark = pytest.mark.usefixtures("compare_env")


# ---------------------------------------------------------------- the registry


class ScoreFile:
    """A throwaway source: one number in score.txt on each side."""

    name = "score-file"

    def read(self, head: Tree, base: Tree, ctx: Context) -> Readings:
        out = Readings(expected=["score.txt"])
        for side, into in ((head, out.head), (base, out.base)):
            data = side.read("score.txt")
            if data is not None:
                into["score.txt"] = Metric("score.txt", "score.txt", [float(data)])
        return out


def test_a_source_added_to_the_registry_is_compared(
    compare_project: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = compare_project({"score.txt": "0.9"}, {"score.txt": "0.8"})
    assert p.compare()[0] == 2  # nothing reads score.txt yet
    assert "nothing to compare" in capsys.readouterr().err
    monkeypatch.setattr(sources, "SOURCES", [*sources.SOURCES, ScoreFile()])
    rc, doc = p.compare()
    assert rc == 1 and verdicts(doc) == {"score.txt": "regressed"}
    assert check(doc, "score.txt")["findings"][0]["location"]["file"] == "score.txt"


def test_configured_files_win_over_the_same_path_in_dvc_yaml(compare_project: Any) -> None:
    """A file is read by the first source that claims it: once, with the columns the configuration names."""
    dvc_yaml = "stages:\n  train:\n    cmd: python t.py\n    metrics:\n      - results.csv:\n          cache: false\n"
    config = '[tool.ci-checks.compare]\nfiles = [{path = "results.csv", columns = ["acc"]}]\n'
    p = compare_project(
        {"pyproject.toml": config, "dvc.yaml": dvc_yaml, "results.csv": "epoch,acc\n0,0.5\n1,0.8\n"},
        {"results.csv": "epoch,acc\n0,0.5\n1,0.9\n"},
    )
    rc, doc = p.compare()
    assert verdicts(doc) == {"results.csv:acc": "improved"} and rc == 0
    assert check(doc, "results.csv:acc")["figures"]["head_samples"] == [0.9]


def test_sources_are_named_and_ordered() -> None:
    assert [s.name for s in sources.SOURCES] == ["files", "dvc", "train-check"]


# ---------------------------------------------------------------- sources


def test_csv_yaml_and_dvclive_sources(compare_project: Any) -> None:
    config = """[tool.ci-checks.compare]
files = [{path = "results.csv", columns = ["acc"]}, {path = "runs.csv", rows = "all"}, "eval.yaml", "dvclive"]
"""
    base = {
        "pyproject.toml": config,
        "results.csv": "epoch,acc,model\n0,0.5,a\n1,0.8,a\n",
        "runs.csv": "seed,acc\n0,0.8\n1,0.81\n2,0.79\n",
        "eval.yaml": "test:\n  f1: 0.7\n",
        "dvclive/metrics.json": {"step": 9, "loss": 0.4},
        "dvclive/plots/metrics/loss.tsv": "step\tloss\n0\t1.0\n1\t0.4\n",
    }
    head = {
        "results.csv": "epoch,acc,model\n0,0.5,a\n1,0.9,a\n",
        "runs.csv": "seed,acc\n0,0.8\n1,0.8\n2,0.81\n",
        "eval.yaml": "test:\n  f1: 0.6\n",
        "dvclive/metrics.json": json.dumps({"step": 9, "loss": 0.3}),
        "dvclive/plots/metrics/loss.tsv": "step\tloss\n0\t1.0\n1\t0.35\n2\t0.3\n",
    }
    p = compare_project(base, head)
    rc, doc = p.compare()
    assert verdicts(doc) == {
        "results.csv:acc": "improved",
        "runs.csv:seed": "unchanged",
        "runs.csv:acc": "within-noise",
        "eval.yaml:test.f1": "regressed",
        "dvclive/metrics.json:step": "unchanged",
        "dvclive/metrics.json:loss": "improved",
    }
    assert check(doc, "runs.csv:acc")["figures"]["head_samples"] == [0.8, 0.8, 0.81]
    curve = check(doc, "curve dvclive/plots/metrics/loss.tsv")
    assert curve["series"]["head:loss"] == [1.0, 0.35, 0.3] and curve["series"]["base:step"] == [0.0, 1.0]
    assert rc == 1


def test_dvc_repo_agrees_with_dvc_metrics_diff(compare_project: Any) -> None:
    """A real DVC project: metrics and plots from dvc.yaml (cache: false), params from params.yaml."""
    pytest.importorskip("dvc")
    dvc_yaml = """stages:
  train:
    cmd: python train.py
    params: [train]
    metrics:
      - metrics/eval.json:
          cache: false
    plots:
      - plots/loss.csv:
          cache: false
          x: epoch
          y: loss
"""
    base = {
        "dvc.yaml": dvc_yaml,
        "params.yaml": "train:\n  lr: 0.01\n  epochs: 3\n",
        "metrics/eval.json": {"accuracy": 0.91, "loss": 0.3, "per_class": {"cat": 0.9, "dog": 0.92}},
        "plots/loss.csv": "epoch,loss\n0,1.0\n1,0.5\n2,0.3\n",
    }
    p = compare_project({})
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=p.root, check=True)
    p.commit(base, "dvc project")
    p.git("branch", "-f", "main")
    p.write(
        {
            "params.yaml": "train:\n  lr: 0.02\n  epochs: 3\n",
            "metrics/eval.json": json.dumps({"accuracy": 0.89, "loss": 0.3, "per_class": {"cat": 0.95, "dog": 0.92}}),
            "plots/loss.csv": "epoch,loss\n0,1.0\n1,0.6\n2,0.4\n",
        },
    )
    rc, doc = p.compare()
    dvc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "dvc", "metrics", "diff", "--json", "--all", "main"],
            cwd=p.root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    ours = {c["check"]: c["figures"] for c in doc["checks"] if c["figures"]["kind"] == "metric"}
    theirs = {f"{file}:{key}": change for file, keys in dvc.items() for key, change in keys.items()}
    assert set(ours) == set(theirs)
    for name, change in theirs.items():
        assert (ours[name]["base"], ours[name]["head"]) == (change["old"], change["new"]), name
    assert verdicts(doc)["metrics/eval.json:accuracy"] == "regressed" and rc == 1
    # "cat" says nothing about which way is better: a change, never an improvement
    assert verdicts(doc)["metrics/eval.json:per_class.cat"] == "changed"
    assert doc["subject"]["params_changed"] == {"train.lr": {"old": 0.01, "new": 0.02}}
    curve = check(doc, "curve plots/loss.csv")
    assert curve["figures"] == {"kind": "curve", "x": "epoch", "y": ["loss"]}
    assert curve["series"] == {
        "head:epoch": [0.0, 1.0, 2.0],
        "head:loss": [1.0, 0.6, 0.4],
        "base:epoch": [0.0, 1.0, 2.0],
        "base:loss": [1.0, 0.5, 0.3],
    }


def test_dvc_cached_metrics_base_comes_from_dvc(compare_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics DVC caches (the default cache: true) are not in git; DVC reads their base from its cache."""
    pytest.importorskip("dvc")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = compare_project({})
    dvc = lambda *args: subprocess.run([sys.executable, "-m", "dvc", *args], cwd=p.root, check=True)  # noqa: E731
    dvc("init", "-q")
    p.write(
        {
            "dvc.yaml": "stages:\n  evaluate:\n    cmd: python ev.py\n    deps: [ev.py]\n"
            "    metrics: [metrics.json]\n",
            "ev.py": "import json\njson.dump({'acc': 0.9}, open('metrics.json', 'w'))\n",
        },
    )
    dvc("repro", "-q")
    p.commit({}, "pipeline with cached metrics")
    p.git("branch", "-f", "main")
    assert "metrics.json" not in p.git("ls-files")
    p.write({"metrics.json": json.dumps({"acc": 0.8})})  # what the changed pipeline would write
    rc, doc = p.compare()
    assert doc["subject"]["base"]["source"] == "dvc"
    figures = check(doc, "metrics.json:acc")["figures"]
    assert (figures["base"], figures["head"], figures["verdict"]) == (0.9, 0.8, "regressed") and rc == 1


def _train_results(path: Path, steps: int | None) -> str:
    result = CheckResult("memorization", figures={"steps_to_memorize": steps, "steps_run": steps or 500})
    path.write_text(render_json(Report(command="train-check", checks=[result])))
    return str(path)


def test_training_steps_to_memorize(compare_project: Any, tmp_path: Path) -> None:
    p = compare_project({"pyproject.toml": CONFIG, "metrics.json": {"a": 1.0}}, {})
    base, head = _train_results(tmp_path / "main.json", 20), _train_results(tmp_path / "pr.json", 62)
    rc, doc = p.compare("--base-results", base, "--head-results", head)
    training = check(doc, "training steps-to-memorize")
    assert training["figures"] == {"kind": "training", "base": 20, "head": 62, "ratio": 3.1}
    assert training["findings"][0]["message"].startswith(
        "memorization: 3.1x more steps to memorize than main (62 vs 20)"
    )
    assert training["status"] == "warn" and rc == 0
    rc, doc = p.compare("--base-results", base, "--head-results", _train_results(tmp_path / "ok.json", 30))
    assert check(doc, "training steps-to-memorize")["findings"] == []


def test_dvc_yaml_whose_metrics_were_never_written(compare_project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    p = compare_project(
        {
            "dvc.yaml": "stages:\n  evaluate:\n    cmd: python ev.py\n    metrics:\n"
            "      - metrics/eval.json:\n          cache: false\n"
        },
        {},
    )
    assert p.compare()[0] == 2
    assert "no metrics yet: none of metrics/eval.json exists in" in capsys.readouterr().err
