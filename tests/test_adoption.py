"""End to end: a repository adopts ci-checks, then lives with it for a pull request that regresses a metric.

GitHub is played by stand-ins: the kit is committed and tagged in a throwaway repository, which both
`uses: octo/ci-checks/.github/workflows/...@vX.Y.Z` and pre-commit's `repo: https://github.com/octo/ci-checks`
resolve to; the REST API is tests/github_server.py; the workflows run job by job through tests/_github_actions.py,
with GitHub's start-up checks (inputs, secrets, permissions, concurrency groups) and the composite actions' real
steps. Nothing is mocked between the workflow files and the `ci-checks` commands they call.

The story: `octo/demo` is a small PyTorch project on main. Pull request 1 runs `ci-checks init`, fills in the spec's
TODOs and commits the four files: its CI (the workflow init wrote) passes, although main has no spec yet ("no
baseline on main yet"), and posts the sticky report. It is merged, then main starts tracking its evaluation metric.
Pull request 2 regresses that metric: its CI fails, and the report says which metric, by how much.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _github_actions import WorkflowError, WorkflowRun, run_workflow  # noqa: E402
from github_server import ACTIONS_TOKEN, REPO, start  # noqa: E402

from ci_checks import __version__  # noqa: E402
from ci_checks.main import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KIT_REPO = "octo/ci-checks"
TAG = f"v{__version__}"

pytestmark = pytest.mark.skipif(
    __version__ == "0+unknown", reason="ci-checks is not installed: pip install -e '.[torch,report,dev]'"
)

MODEL = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, features=4, hidden=32, classes=3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.head(self.body(x))
"""
TRAIN = '''\
import torch


def first_batch(n=24, seed=0):
    """A small real-looking batch: three blobs in 4-D."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 4, generator=g) * 0.5 + torch.nn.functional.one_hot(y, 4).float() * 3
    return x, y


def train_step(model, batch, loss_fn, optimizer):
    x, y = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()
'''
TEST = """\
from demo.model import Net
from demo.train import first_batch


def test_forward_shape():
    x, _ = first_batch()
    assert Net()(x).shape == (24, 3)
"""
PYPROJECT = """\
[project]
name = "demo"
version = "0.0.1"
dependencies = ["torch"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""
# What a user writes into the template's TODOs.
FILL_IN = {
    "import torch\n": "import torch\n\nfrom demo.model import Net\nfrom demo.train import first_batch, train_step\n",
    "    model_factory = None\n": "    model_factory = Net\n",
    "    batch = None\n": "    batch = first_batch()\n",
    '        # "train_step": train_step,\n': '        "train_step": train_step,\n',
}


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def _commit(cwd: Path, message: str) -> str:
    _git(cwd, "add", "-A")
    _git(cwd, "commit", "-q", "-m", message)
    return _git(cwd, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This working tree as the kit's GitHub repository at the tag the README names."""
    kit = tmp_path_factory.mktemp("github") / KIT_REPO
    files = _git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in files:
        if name and (ROOT / name).is_file():
            (kit / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, kit / name)
    _git(kit, "init", "-q", "-b", "main")
    _commit(kit, "ci-checks")
    _git(kit, "tag", TAG)
    return kit


@pytest.fixture(scope="module")
def runner_env(tmp_path_factory: pytest.TempPathFactory, kit: Path) -> dict[str, str]:
    """The job's machine: a fresh venv (the kit gets pip-installed into it by actions/setup, as on a runner) that
    sees this environment's packages (torch, pre-commit) through a .pth file, and git that finds the kit's
    repository at its GitHub URL."""
    venv = tmp_path_factory.mktemp("runner") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "dev_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PIP_NO_BUILD_ISOLATION": "0",  # build the kit with this environment's setuptools: no download
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_COMPILE": "1",
        "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit")),
        "CI_CHECKS_RETRY_BASE_SECONDS": "0",
        "DVC_NO_ANALYTICS": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.file://{kit}.insteadOf",
        "GIT_CONFIG_VALUE_0": f"https://github.com/{KIT_REPO}",
    }


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, kit: Path, runner_env: dict[str, str]) -> dict[str, Any]:
    """Both pull requests, run once for the tests below."""
    fake, server = start()
    base = tmp_path_factory.mktemp("adoption")
    demo = base / "demo"
    files = {
        "pyproject.toml": PYPROJECT,
        "demo/__init__.py": "",
        "demo/model.py": MODEL,
        "demo/train.py": TRAIN,
        "tests/test_model.py": TEST,
    }
    for name, text in files.items():
        (demo / name).parent.mkdir(parents=True, exist_ok=True)
        (demo / name).write_text(text)
    _git(demo, "init", "-q", "-b", "main")
    _commit(demo, "the demo project")

    # Pull request 1: adopt ci-checks.
    _git(demo, "checkout", "-q", "-b", "adopt-ci-checks")
    cwd = os.getcwd()
    os.chdir(demo)
    try:
        assert main(["init", "--kit-repo", KIT_REPO]) == 0
    finally:
        os.chdir(cwd)
    spec = (demo / "ci_spec.py").read_text()
    for old, new in FILL_IN.items():
        assert old in spec, old
        spec = spec.replace(old, new, 1)
    (demo / "ci_spec.py").write_text(spec)
    adopt = _commit(demo, "Adopt ci-checks")

    def pull_request(number: int, branch: str, sha: str, run: int, skip: tuple[str, ...] = ()) -> WorkflowRun:
        repo = {"full_name": REPO, "id": 1}
        github = {
            "event_name": "pull_request",
            "repository": REPO,
            "sha": sha,
            "ref": f"refs/pull/{number}/merge",
            "ref_name": f"{number}/merge",
            "base_ref": "main",
            "head_ref": branch,
            "workflow": "ML CI",
            "run_id": str(run),
            "token": ACTIONS_TOKEN,
            "api_url": fake.url,
            "server_url": "https://github.com",
            "event": {
                "number": number,
                "pull_request": {
                    "number": number,
                    "head": {"ref": branch, "sha": sha, "repo": repo},
                    "base": {"ref": "main", "repo": repo},
                },
                "repository": {"full_name": REPO, "default_branch": "main"},
            },
        }
        return run_workflow(
            str(demo / ".github" / "workflows" / "ml-ci.yml"),
            remote=f"file://{demo}",
            github=github,
            temp=str(tmp_path_factory.mktemp(f"pr{number}")),
            resolve=lambda name, ref: kit if (name, ref) == (KIT_REPO, TAG) else pytest.fail(f"{name}@{ref}"),
            env=runner_env,
            skip=skip,
        )

    try:
        first = pull_request(1, "adopt-ci-checks", adopt, 1)
        comment_after_first = [c["body"] for c in fake.thread(1)]
        # Merged; then main tracks its evaluation metric (written by the project's evaluation script).
        _git(demo, "checkout", "-q", "main")
        _git(demo, "merge", "-q", "--ff-only", "adopt-ci-checks")
        (demo / "metrics.json").write_text(json.dumps({"accuracy": 0.91, "loss": 0.31}))
        with (demo / "pyproject.toml").open("a") as fh:
            fh.write('\n[tool.ci-checks.compare]\nfiles = ["metrics.json"]\n')
        _commit(demo, "Track the evaluation metrics")
        # Pull request 2: a change that costs accuracy.
        _git(demo, "checkout", "-q", "-b", "smaller-model")
        (demo / "demo" / "model.py").write_text(MODEL.replace("hidden=32", "hidden=4"))
        (demo / "metrics.json").write_text(json.dumps({"accuracy": 0.62, "loss": 0.88}))
        regress = _commit(demo, "A smaller model")
        # Its lint and pytest jobs are the first pull request's again (same configuration): not rerun, for time.
        second = pull_request(2, "smaller-model", regress, 2, skip=("ml-ci/lint", "ml-ci/pytest"))
    finally:
        server.shutdown()
    return {"first": first, "second": second, "comment1": comment_after_first, "fake": fake, "demo": demo}


def _explain(run: WorkflowRun, prefix: str = "") -> str:
    """The failed jobs of a run and the logs of their failed steps, through every level of calls."""
    lines = []
    for job_id, job in run.jobs.items():
        if job.called is not None:
            lines.append(_explain(job.called, f"{prefix}{job_id}/"))
        elif job.result == "failure":
            for step in job.steps:
                if step.outcome == "failure":
                    lines.append(f"--- {prefix}{job_id}: {step.name}\n{step.log[-4000:]}")
    return "\n".join(lines)


def test_the_adopting_pull_request_is_green(story):
    run = story["first"]
    results = {path: run.job(path).result for path in ("ml-ci", "report")}
    assert results == {"ml-ci": "success", "report": "success"}, _explain(run)
    inner = {j: r.result for j, r in run.job("ml-ci").called.jobs.items()}
    assert inner == {
        "lint": "success",
        "pytest": "success",
        "train-check": "success",
        "compare": "success",
        "export-parity": "skipped",
        "quality": "skipped",
        "data-check": "skipped",
        "score": "skipped",
        "rollback": "skipped",
        "rerun": "skipped",
        "report": "success",
        "passed": "success",
    }, _explain(run)


def test_the_adopting_pull_request_has_no_baseline_yet_and_says_so(story):
    compare = story["first"].job("ml-ci/compare")
    base = compare.step("base")
    assert base.outcome == "failure" and "no training spec" in base.log, "main has no spec yet"
    step = compare.step("Compare with the base")
    assert step.outcome == "success"
    assert "::notice title=ci-checks compare::no baseline on main yet" in step.log
    assert step.outputs["status"] == "skip"


def test_the_adopting_pull_request_ran_the_kit_hooks_and_the_users_tests(story):
    lint = story["first"].job("ml-ci/lint/lint")
    log = re.sub(r"\x1b\[[0-9;]*m", "", lint.log)
    for hook in ("validate \\[tool\\.ci-checks\\]", "refuse large model and data files", "keep DVC-tracked outputs"):
        assert re.search(hook + r".*Passed", log), (hook, log[-3000:])
    pytest_job = story["first"].job("ml-ci/pytest/pytest")
    assert pytest_job.step("Run pytest").outcome == "success"
    assert "pytest: 1 passed, 0 failed" in pytest_job.summary


def test_the_adopting_pull_request_gets_one_sticky_report(story):
    bodies = story["comment1"]
    assert len(bodies) == 1, bodies
    body = bodies[0]
    assert "<!-- ci-checks:report id=ci-checks-report -->" in body
    for check in ("parameter-updates", "memorization", "batch-independence"):
        assert check in body
    assert story["first"].job("report").outputs["comment-url"].endswith("#issuecomment-1001")


def test_the_regressing_pull_request_is_red_and_the_report_says_why(story):
    run = story["second"]
    passed = run.job("ml-ci/passed")
    assert passed.result == "failure", _explain(run)
    assert "::error title=ci-checks::job compare ended with failure" in passed.log
    others = {j: r.result for j, r in run.job("ml-ci").called.jobs.items() if j not in ("compare", "passed")}
    assert others == {
        "lint": "skipped",
        "pytest": "skipped",
        "train-check": "success",
        "export-parity": "skipped",
        "quality": "skipped",
        "data-check": "skipped",
        "score": "skipped",
        "rollback": "skipped",
        "rerun": "skipped",
        "report": "success",
    }, _explain(run)
    compare = run.job("ml-ci/compare")
    assert compare.step("base").outcome == "success", "main has a spec now: its train-check is the baseline"
    assert compare.step("Compare with the base").returncode == 1
    report = run.job("ml-ci/report")
    assert report.outputs["status"] == "fail"
    for text in ("accuracy", "regressed", "0.91", "0.62"):
        assert text in report.summary, text
    assert "training steps-to-memorize" in report.summary, "both train-check results were compared"
    thread = story["fake"].thread(2)
    assert len(thread) == 1 and "accuracy" in thread[0]["body"] and "regressed" in thread[0]["body"]


def test_a_caller_that_grants_too_little_is_refused_at_start_up(story, tmp_path, kit, runner_env):
    """GitHub checks a called workflow's permissions before any job runs; so does the runner model."""
    demo = story["demo"]
    workflow = (demo / ".github" / "workflows" / "ml-ci.yml").read_text()
    bad = tmp_path / "ml-ci.yml"
    bad.write_text(workflow.replace("      pull-requests: write # create or update the one sticky comment\n", ""))
    with pytest.raises(WorkflowError, match="The nested job 'report' is requesting 'pull-requests: write'"):
        run_workflow(
            str(bad),
            remote=f"file://{demo}",
            github={"event_name": "push", "repository": REPO, "sha": "0" * 40, "workflow": "ML CI", "event": {}},
            temp=str(tmp_path),
            resolve=lambda name, ref: kit,
            env=runner_env,
        )


# ---------------------------------------------------------------- the bundled example, as shipped


def test_the_bundled_example_runs_compare_and_report_as_shipped(tmp_path, capsys, monkeypatch):
    """A clone has the example's metrics and curve (DVC `cache: false` outputs are committed): compare and report
    run on it with nothing to generate first. Here the new metrics are written by hand instead of by the pipeline
    (examples/tests runs the pipeline itself)."""
    shipped = tmp_path / "clone"
    files = _git(ROOT, "ls-files", "-co", "--exclude-standard", "-z", "examples", "pyproject.toml").split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (shipped / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, shipped / name)
    for name in ("metrics/train.json", "metrics/eval.json", "plots/train_loss.csv", "dvc.lock", ".dvc/config"):
        assert (shipped / "examples" / name).is_file(), f"examples/{name} is not shipped (ignored by git?)"
    _git(shipped, "init", "-q", "-b", "main")
    _commit(shipped, "as shipped")
    monkeypatch.chdir(shipped / "examples")
    for key in ("GITHUB_BASE_REF", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(key, raising=False)
    assert main(["compare", "--base", "HEAD", "--quiet"]) == 0, capsys.readouterr()
    assert "unchanged" in capsys.readouterr().out
    evaluation = json.loads((shipped / "examples" / "metrics" / "eval.json").read_text())
    (shipped / "examples" / "metrics" / "eval.json").write_text(json.dumps({**evaluation, "accuracy": 0.76}))
    (shipped / "examples" / "results").mkdir()
    assert main(["compare", "--base", "HEAD", "--quiet", "--output", "results/compare.json"]) == 1
    capsys.readouterr()
    assert main(["report", "results/compare.json", "--output", "results/report.md"]) == 0
    report = (shipped / "examples" / "results" / "report.md").read_text()
    assert "metrics/eval.json:accuracy" in report and "regressed" in report
