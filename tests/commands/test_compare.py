"""ci-checks compare: real temporary git repositories with metrics committed on main and changed on a branch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ci_checks.render import render_json
from ci_checks.results import CheckResult, Report
from ci_checks.main import main

GIT_ENV = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.com",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "DVC_NO_ANALYTICS": "1",
}


@pytest.fixture(autouse=True)
def _git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    # Running inside GitHub Actions must not change which base the tests resolve, or where output goes.
    for key in ("GITHUB_BASE_REF", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(key, raising=False)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def write(root: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = root / name
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))


class Project:
    """A git repository: `main` holds the base metrics, the checked-out branch `feature` the changed ones."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def commit(self, files: dict[str, Any], message: str = "change") -> None:
        write(self.root, files)
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)

    def compare(self, *args: str) -> tuple[int, dict[str, Any]]:
        out = self.root / "compare.json"
        rc = main(["compare", "--head-dir", str(self.root), "--output", str(out), "--quiet", *args])
        return rc, json.loads(out.read_text()) if out.exists() and rc != 2 else {}


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Project]:
    """make(base_files, head_files): commit base_files on main, branch, write head_files (uncommitted)."""

    def make(base: dict[str, Any], head: dict[str, Any] | None = None, *, commit_head: bool = False) -> Project:
        root = tmp_path / "repo"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        p = Project(root)
        p.commit(base, "base")
        git(root, "checkout", "-q", "-b", "feature")
        if head is not None:
            if commit_head:
                p.commit(head)
            else:
                write(root, head)
        return p

    return make


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["figures"]["verdict"] for c in doc["checks"] if c["figures"].get("kind") == "metric"}


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["check"] == name)


CONFIG = '[tool.ci-checks.compare]\nfiles = ["metrics.json"]\n'


# ---------------------------------------------------------------- verdicts


def test_every_verdict_on_single_values(project: Callable[..., Project]) -> None:
    base = {
        "accuracy": 0.90,
        "f1": 0.80,
        "recall": 0.70,
        "loss": 0.30,
        "latency_ms": 10.0,
        "gone": 1.0,
        "bleu": 30.0,
        "name": 1.0,
        "per_class": 0.5,
        "model": "resnet",
    }
    head = {
        "accuracy": 0.95,
        "f1": 0.80,
        "recall": 0.702,
        "loss": 0.36,
        "latency_ms": 9.0,
        "bleu": "n/a",
        "name": float("nan"),
        "per_class": [{"a": 1}],
        "brand_new": 3.0,
        "model": "resnet",
    }
    p = project({"pyproject.toml": CONFIG, "metrics.json": base}, {"metrics.json": json.dumps(head)})
    rc, doc = p.compare()
    assert rc == 1
    assert verdicts(doc) == {
        "metrics.json:accuracy": "improved",
        "metrics.json:f1": "unchanged",
        "metrics.json:recall": "within-noise",
        "metrics.json:loss": "regressed",
        "metrics.json:latency_ms": "improved",
        "metrics.json:bleu": "invalid",
        "metrics.json:name": "invalid",
        "metrics.json:per_class": "invalid",
        "metrics.json:brand_new": "new",
        "metrics.json:gone": "missing",
        "metrics.json:model": "invalid",
    }
    loss = check(doc, "metrics.json:loss")
    assert loss["status"] == "fail" and loss["figures"]["direction"] == "lower" and loss["figures"]["direction_guessed"]
    assert loss["summary"] == "0.3 -> 0.36 (+20.0%), regressed (tolerance 0.003)"
    assert "guessed" in loss["findings"][0]["message"] and loss["findings"][0]["location"]["file"] == "metrics.json"
    # NaN where main had a number fails a required metric; a string or a nested structure only warns.
    assert check(doc, "metrics.json:name")["status"] == "fail"
    assert check(doc, "metrics.json:bleu")["findings"][0]["severity"] == "warning"
    assert "nested structure" in check(doc, "metrics.json:per_class")["findings"][0]["message"]
    assert check(doc, "metrics.json:gone")["status"] == "warn"
    assert check(doc, "metrics.json:model")["findings"] == []  # a label on both sides: nothing new to report
    assert check(doc, "metrics.json:brand_new")["findings"] == []
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert figures["base"] == 0.90 and figures["head"] == 0.95 and figures["base_samples"] == [0.90]
    assert figures["test"] == "tolerance" and figures["rel_tol"] == 0.01 and figures["abs_tol"] is None
    assert figures["delta"] == pytest.approx(0.05) and figures["relative"] == pytest.approx(0.05 / 0.9)
    assert doc["subject"]["base"]["source"] == "git" and doc["subject"]["base"]["ref"] == "main"
    assert doc["subject"]["head"] == {"ref": "working tree", "sha": git(p.root, "rev-parse", "HEAD").strip()}
    assert doc["subject"]["first_run"] is False and doc["subject"]["fail_on"] == "regressed"


def test_no_regression_passes_and_the_text_output_says_why(
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str]
) -> None:
    p = project(
        {"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.912}},
        {"metrics.json": json.dumps({"accuracy": 0.915})},
    )
    assert main(["compare", "--head-dir", str(p.root)]) == 0
    out, err = capsys.readouterr()
    assert "metrics.json:accuracy 0.912 -> 0.915 (+0.3%), within-noise (tolerance 0.00912)" in out
    assert "working tree vs main" in err and "1 within-noise" in err


POLICY = CONFIG + """
[tool.ci-checks.metrics."*accuracy"]
abs-tol = 0.05

[tool.ci-checks.metrics.top1_accuracy]
abs-tol = 0.001

[tool.ci-checks.metrics.score]
direction = "lower"
required = false
"""


def test_policy_globs_specific_names_direction_and_required(project: Callable[..., Project]) -> None:
    p = project(
        {"pyproject.toml": POLICY, "metrics.json": {"val_accuracy": 0.9, "top1_accuracy": 0.9, "score": 1.0}},
        {"metrics.json": json.dumps({"val_accuracy": 0.87, "top1_accuracy": 0.89, "score": 2.0})},
    )
    rc, doc = p.compare()
    assert verdicts(doc) == {
        "metrics.json:val_accuracy": "within-noise",
        "metrics.json:top1_accuracy": "regressed",
        "metrics.json:score": "regressed",
    }
    assert check(doc, "metrics.json:top1_accuracy")["figures"]["abs_tol"] == 0.001
    score = check(doc, "metrics.json:score")
    assert score["figures"]["direction"] == "lower" and not score["figures"]["direction_guessed"]
    assert score["status"] == "warn" and not score["figures"]["required"]  # not required: a warning only
    assert rc == 1


@pytest.mark.parametrize(
    ("fail_on", "rc"),
    [
        pytest.param("never", 0, id="never"),
        pytest.param("regressed", 0, id="regressed-ignores-missing"),
        pytest.param("missing", 1, id="missing"),
        pytest.param("any", 1, id="any"),
    ],
)
def test_fail_on(project: Callable[..., Project], fail_on: str, rc: int) -> None:
    p = project(
        {"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9, "old": 1.0}},
        {"metrics.json": json.dumps({"accuracy": 0.9})},
    )
    got, doc = p.compare("--fail-on", fail_on)
    assert got == rc and doc["subject"]["fail_on"] == fail_on


def test_fail_on_from_config_and_never_turns_errors_into_warnings(project: Callable[..., Project]) -> None:
    config = CONFIG + 'fail-on = "never"\n'
    p = project({"pyproject.toml": config, "metrics.json": {"loss": 0.1}}, {"metrics.json": json.dumps({"loss": 0.5})})
    rc, doc = p.compare()
    assert rc == 0 and verdicts(doc) == {"metrics.json:loss": "regressed"}
    assert check(doc, "metrics.json:loss")["status"] == "warn"


# ---------------------------------------------------------------- repeated measurements


def _welch_reference(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """t, df and the one-sided p-value by hand: the formulas, and the t density integrated numerically."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    t = (mb - ma) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    pdf = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    # P(T > |t|) = 1/2 - integral from 0 to |t| (Simpson, 20000 intervals)
    n, h = 20000, abs(t) / 20000
    area = h / 3 * (pdf(0) + pdf(abs(t)) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n)))
    return t, df, 0.5 - area


BASE_SEEDS = [0.912, 0.905, 0.918, 0.909, 0.914]


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        pytest.param([0.897, 0.890, 0.903, 0.894, 0.899], "regressed", id="regressed-3-sigma"),
        pytest.param([0.915, 0.902, 0.921, 0.906, 0.909], "within-noise", id="noise"),
        pytest.param([0.930, 0.925, 0.934, 0.928, 0.931], "improved", id="improved"),
    ],
)
def test_seed_files_by_glob_use_welch(project: Callable[..., Project], head: list[float], verdict: str) -> None:
    config = '[tool.ci-checks.compare]\nfiles = ["metrics/seed_*.json"]\n'
    base = {f"metrics/seed_{i}.json": {"eval": {"accuracy": v}} for i, v in enumerate(BASE_SEEDS)}
    changed = {f"metrics/seed_{i}.json": json.dumps({"eval": {"accuracy": v}}) for i, v in enumerate(head)}
    p = project({"pyproject.toml": config, **base}, changed)
    rc, doc = p.compare()
    figures = check(doc, "metrics/seed_*.json:eval.accuracy")["figures"]
    assert figures["verdict"] == verdict and rc == (1 if verdict == "regressed" else 0)
    assert figures["test"] == "welch" and figures["base_samples"] == BASE_SEEDS and figures["head_samples"] == head
    t, df, p_value = _welch_reference(BASE_SEEDS, head)
    assert figures["p_value"] == pytest.approx(p_value, rel=1e-6, abs=1e-12)
    lo, hi = figures["ci"]
    assert lo < figures["delta"] < hi


def test_a_list_of_numbers_is_seeds_and_bootstrap_reports_an_interval(project: Callable[..., Project]) -> None:
    config = CONFIG + '\n[tool.ci-checks.metrics.accuracy]\ntest = "bootstrap"\n'
    p = project(
        {"pyproject.toml": config, "metrics.json": {"accuracy": BASE_SEEDS, "loss": [0.2, 0.21, 0.19]}},
        {"metrics.json": json.dumps({"accuracy": [0.897, 0.890, 0.903, 0.894, 0.899], "loss": [0.2, 0.22, 0.18]})},
    )
    rc, doc = p.compare()
    acc, loss = check(doc, "metrics.json:accuracy"), check(doc, "metrics.json:loss")
    assert acc["figures"]["test"] == "bootstrap" and acc["figures"]["verdict"] == "regressed"
    lo, hi = acc["figures"]["ci"]
    assert lo < hi < 0 and "90% CI" in acc["summary"]
    assert loss["figures"]["test"] == "welch" and loss["figures"]["verdict"] == "unchanged"  # same mean
    assert p.compare()[1]["checks"][0]["figures"]["ci"] == acc["figures"]["ci"]  # seeded: the same every run
    assert rc == 1


def test_significant_but_within_tolerance_is_noise(project: Callable[..., Project]) -> None:
    config = CONFIG + "\n[tool.ci-checks.metrics.accuracy]\nabs-tol = 0.02\n"
    p = project(
        {"pyproject.toml": config, "metrics.json": {"accuracy": BASE_SEEDS}},
        {"metrics.json": json.dumps({"accuracy": [0.897, 0.890, 0.903, 0.894, 0.899]})},
    )
    rc, doc = p.compare()
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert figures["p_value"] < 0.01 and figures["verdict"] == "within-noise" and rc == 0


# ---------------------------------------------------------------- sources


def test_csv_yaml_and_dvclive_sources(project: Callable[..., Project]) -> None:
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
    p = project(base, head)
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


def test_dvc_repo_agrees_with_dvc_metrics_diff(project: Callable[..., Project]) -> None:
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
    p = project({})
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=p.root, check=True)
    p.commit(base, "dvc project")
    git(p.root, "branch", "-f", "main")
    write(
        p.root,
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
    assert verdicts(doc)["metrics/eval.json:per_class.cat"] == "improved"
    assert doc["subject"]["params_changed"] == {"train.lr": {"old": 0.01, "new": 0.02}}
    curve = check(doc, "curve plots/loss.csv")
    assert curve["figures"] == {"kind": "curve", "x": "epoch", "y": ["loss"]}
    assert curve["series"] == {
        "head:epoch": [0.0, 1.0, 2.0],
        "head:loss": [1.0, 0.6, 0.4],
        "base:epoch": [0.0, 1.0, 2.0],
        "base:loss": [1.0, 0.5, 0.3],
    }


def test_dvc_cached_metrics_base_comes_from_dvc(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metrics DVC caches (the default cache: true) are not in git; DVC reads their base from its cache."""
    pytest.importorskip("dvc")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = project({})
    dvc = lambda *args: subprocess.run([sys.executable, "-m", "dvc", *args], cwd=p.root, check=True)  # noqa: E731
    dvc("init", "-q")
    write(
        p.root,
        {
            "dvc.yaml": "stages:\n  evaluate:\n    cmd: python ev.py\n    deps: [ev.py]\n"
            "    metrics: [metrics.json]\n",
            "ev.py": "import json\njson.dump({'acc': 0.9}, open('metrics.json', 'w'))\n",
        },
    )
    dvc("repro", "-q")
    p.commit({}, "pipeline with cached metrics")
    git(p.root, "branch", "-f", "main")
    assert "metrics.json" not in git(p.root, "ls-files")
    write(p.root, {"metrics.json": json.dumps({"acc": 0.8})})  # what the changed pipeline would write
    rc, doc = p.compare()
    assert doc["subject"]["base"]["source"] == "dvc"
    figures = check(doc, "metrics.json:acc")["figures"]
    assert (figures["base"], figures["head"], figures["verdict"]) == (0.9, 0.8, "regressed") and rc == 1


def test_first_run_without_a_baseline_passes_and_says_so(
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str]
) -> None:
    p = project({"pyproject.toml": CONFIG}, {"metrics.json": json.dumps({"accuracy": 0.9, "loss": 0.2})})
    assert main(["compare", "--head-dir", str(p.root), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["subject"]["first_run"] is True and set(verdicts(doc).values()) == {"new"}
    assert "no baseline on main yet: 2 metrics recorded, nothing to compare" in err


def test_baseline_from_results_json_of_main(project: Callable[..., Project], tmp_path: Path) -> None:
    """Repositories that do not commit metrics: main's compare results are the baseline."""
    p = project({"pyproject.toml": CONFIG, "plots.csv": "step,loss\n0,1\n1,0.5\n"})
    git(p.root, "checkout", "-q", "main")
    write(p.root, {"metrics.json": json.dumps({"accuracy": [0.9, 0.91, 0.905], "loss": 0.3})})
    saved = tmp_path / "main-compare.json"
    config = CONFIG + 'curves = ["plots.csv"]\n'
    write(p.root, {"pyproject.toml": config})
    assert main(["compare", "--head-dir", str(p.root), "--output", str(saved), "--quiet"]) == 0
    # The branch's run: another machine, not even a git checkout.
    work = tmp_path / "work"
    write(
        work,
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
        "sha": git(p.root, "rev-parse", "HEAD").strip(),
        "source": "results-json",
    }
    assert doc["subject"]["head"]["sha"] is None
    assert check(doc, "curve plots.csv")["series"]["base:loss"] == [1.0, 0.5]


def _train_results(path: Path, steps: int | None) -> str:
    result = CheckResult("memorization", figures={"steps_to_memorize": steps, "steps_run": steps or 500})
    path.write_text(render_json(Report(command="train-check", checks=[result])))
    return str(path)


def test_training_steps_to_memorize(project: Callable[..., Project], tmp_path: Path) -> None:
    p = project({"pyproject.toml": CONFIG, "metrics.json": {"a": 1.0}}, {})
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


def test_github_format_annotates_the_regression(
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    p = project(
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


# ---------------------------------------------------------------- base revisions and shallow clones


def _origin(tmp_path: Path) -> Path:
    """An upstream with main (3 commits) and a branch `feature` that changed the metrics."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    p = Project(origin)
    p.commit({"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9}}, "m1")
    p.commit({"metrics.json": {"accuracy": 0.91}}, "m2")
    git(origin, "checkout", "-q", "-b", "feature")
    p.commit({"metrics.json": {"accuracy": 0.85}}, "f1")
    p.commit({"notes.txt": "x"}, "f2")
    git(origin, "checkout", "-q", "main")
    p.commit({"metrics.json": {"accuracy": 0.99}}, "m3: main moved on after the branch")
    return origin


def test_default_base_is_the_merge_base_with_the_remote_default_branch(tmp_path: Path) -> None:
    origin = _origin(tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "feature", f"file://{origin}", str(clone))
    rc, doc = Project(clone).compare()
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert (figures["base"], figures["head"]) == (0.91, 0.85)  # the fork point, not main's tip (0.99)
    assert doc["subject"]["base"]["ref"] == "origin/main"
    assert doc["subject"]["base"]["sha"] == git(clone, "merge-base", "HEAD", "origin/main").strip()
    rc, doc = Project(clone).compare("--base", "origin/main")  # an explicit ref is used as it is
    assert check(doc, "metrics.json:accuracy")["figures"]["base"] == 0.99


def test_shallow_clone_fetches_the_base_branch_and_enough_history(tmp_path: Path) -> None:
    origin = _origin(tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", f"file://{origin}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository").strip() == "true"
    rc, doc = Project(clone).compare()
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert (figures["base"], figures["head"], figures["verdict"]) == (0.91, 0.85, "regressed") and rc == 1


def test_shallow_clone_without_fetching_names_the_fetch_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = _origin(tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", f"file://{origin}", str(clone))
    write(clone, {"pyproject.toml": CONFIG + "fetch-depth = 0\n"})
    assert Project(clone).compare()[0] == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "actions/checkout with fetch-depth: 0, or git fetch origin main --depth=50" in err


def test_missing_base_ref_exits_2_naming_the_fetch(
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str]
) -> None:
    p = project({"pyproject.toml": CONFIG, "metrics.json": {"a": 1}}, {})
    assert p.compare("--base", "release-9")[0] == 2
    err = capsys.readouterr().err
    assert err == (
        "ci-checks: error: base ref 'release-9' is not in this clone (a shallow or single-branch "
        "checkout?); fetch it: actions/checkout with fetch-depth: 0, or git fetch origin release-9 "
        "--depth=50\n"
    )


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
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str], files: dict[str, str], expected: str
) -> None:
    p = project({"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9}}, files)
    assert p.compare()[0] == 2
    assert capsys.readouterr().err == expected + "\n"


def test_malformed_file_on_the_base_side_names_the_revision(
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str]
) -> None:
    p = project({"pyproject.toml": CONFIG, "metrics.json": "{oops"}, {"metrics.json": json.dumps({"a": 1})})
    assert p.compare()[0] == 2
    assert capsys.readouterr().err.startswith("ci-checks: error: metrics.json at main (")


def test_policy_for_a_metric_that_exists_nowhere(
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str]
) -> None:
    config = CONFIG + '\n[tool.ci-checks.metrics.acuracy]\ndirection = "higher"\n'
    p = project({"pyproject.toml": config, "metrics.json": {"accuracy": 0.9, "loss": 0.1}}, {})
    assert p.compare()[0] == 2
    assert capsys.readouterr().err == (
        "ci-checks: error: [tool.ci-checks.metrics] 'acuracy' names no metric on either side (closest: "
        "metrics.json:accuracy); fix the name, or set required = false if the metric may be absent\n"
    )
    write(p.root, {"pyproject.toml": config + "required = false\n"})
    rc, doc = p.compare()
    policy = check(doc, "policy acuracy")
    assert rc == 0 and policy["status"] == "warn" and policy["figures"]["closest"] == ["metrics.json:accuracy"]


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
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str], config: str, expected: str
) -> None:
    p = project({"pyproject.toml": config, "metrics.json": {"loss": 0.1}}, {})
    assert p.compare()[0] == 2
    assert expected in capsys.readouterr().err


def test_not_a_git_repository_and_nothing_to_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "a", {"metrics.json": "{}", "pyproject.toml": CONFIG})
    assert main(["compare", "--head-dir", str(tmp_path / "a")]) == 2
    assert "is not in a git repository" in capsys.readouterr().err
    git(tmp_path / "a", "init", "-q", "-b", "main")
    write(tmp_path / "a", {"pyproject.toml": ""})
    assert main(["compare", "--head-dir", str(tmp_path / "a")]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_only_one_training_results_file_is_bad_input(
    project: Callable[..., Project], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = project({"pyproject.toml": CONFIG, "metrics.json": {"a": 1.0}}, {})
    assert p.compare("--head-results", _train_results(tmp_path / "pr.json", 5))[0] == 2
    assert "pass both --base-results and --head-results" in capsys.readouterr().err


def test_dvc_yaml_whose_metrics_were_never_written(
    project: Callable[..., Project], capsys: pytest.CaptureFixture[str]
) -> None:
    p = project(
        {
            "dvc.yaml": "stages:\n  evaluate:\n    cmd: python ev.py\n    metrics:\n"
            "      - metrics/eval.json:\n          cache: false\n"
        },
        {},
    )
    assert p.compare()[0] == 2
    assert "no metrics yet: none of metrics/eval.json exists in" in capsys.readouterr().err


def test_pull_request_base_branch_from_github_base_ref(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project({"pyproject.toml": CONFIG, "metrics.json": {"accuracy": 0.9}})
    git(p.root, "checkout", "-q", "-b", "release", "main")
    p.commit({"metrics.json": {"accuracy": 0.8}}, "release branch")
    git(p.root, "checkout", "-q", "feature")
    write(p.root, {"metrics.json": json.dumps({"accuracy": 0.85})})
    assert check(p.compare()[1], "metrics.json:accuracy")["figures"]["base"] == 0.9  # main
    monkeypatch.setenv("GITHUB_BASE_REF", "release")  # set by GitHub Actions on pull_request events
    rc, doc = p.compare()
    assert doc["subject"]["base"]["ref"] == "release"
    # The merge-base of the branch with release is main's commit: release's own change is not this PR's doing.
    assert check(doc, "metrics.json:accuracy")["figures"]["base"] == 0.9
