"""Run every composite action's steps as GitHub would (tests/_github_actions.py), against examples/ and small temp
projects, and check exit codes, outputs, summaries and files. A typo in a step fails here, not on a user's PR."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _github_actions import ExpressionError, load_yaml, run_composite  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = ROOT / "actions"
EXAMPLES = ROOT / "examples"
ACTION_NAMES = sorted(p.parent.name for p in ACTIONS.glob("*/action.yml"))
# Deprecated aliases kept for one release (removed in v0.2.0): old name -> the action it forwards to.
DEPRECATED = {"test": "pytest", "rerun-training": "rerun"}


@pytest.fixture
def run(tmp_path: Path):
    """run(action, inputs, workspace=..., env=..., github=...) -> ActionResult, with temp files under tmp_path."""

    def _run(name: str, inputs: dict[str, str], *, workspace: Path = ROOT, **kwargs: Any):
        temp = tmp_path / f"runner-temp-{name}"
        temp.mkdir(exist_ok=True)
        return run_composite(str(ACTIONS / name), inputs, workspace=str(workspace), temp=str(temp), **kwargs)

    return _run


def test_every_action_has_a_test_here():
    tested = set(re.findall(r'\brun\(\s*"([a-z-]+)"', Path(__file__).read_text()))
    assert set(ACTION_NAMES) - set(DEPRECATED) == {
        "setup",
        "lint",
        "pytest",
        "train-check",
        "compare",
        "report",
        "rerun",
        "export-parity",
        "quality",
        "rollback",
        "score",
        "data-check",
    }
    assert tested == set(ACTION_NAMES), f"actions without a run test: {sorted(set(ACTION_NAMES) - tested)}"


@pytest.mark.parametrize("name", ACTION_NAMES)
def test_scripts_only_read_the_env_vars_their_step_defines(name):
    """A CI_CHECKS_* variable used in a script but not set in that step's env: is a typo that set -u would only
    catch on the branch that reads it."""
    for step in load_yaml(str(ACTIONS / name / "action.yml"))["runs"]["steps"]:
        if "run" not in step:
            continue
        used = set(re.findall(r"\$\{?(CI_CHECKS_[A-Z0-9_]+)", step["run"])) | set(
            re.findall(r'os\.environ(?:\.get\()?\[?"(CI_CHECKS_[A-Z0-9_]+)"', step["run"])
        )
        defined = set(step.get("env") or {})
        assert used <= defined, f"{name}: step {step.get('name')!r} reads undefined {sorted(used - defined)}"
        inputs_used = set(re.findall(r"inputs\.([a-z0-9-]+)", json.dumps(step.get("env") or {})))
        declared = set(load_yaml(str(ACTIONS / name / "action.yml")).get("inputs") or {})
        assert inputs_used <= declared, f"{name}: step env reads undeclared inputs {sorted(inputs_used - declared)}"


def test_the_runner_model_rejects_a_typo_in_an_expression(tmp_path):
    action = tmp_path / "typo"
    action.mkdir()
    (action / "action.yml").write_text(
        "name: t\ndescription: t\ninputs:\n  spec:\n    description: d\n    default: ''\nruns:\n  using: composite\n"
        "  steps:\n    - shell: bash\n      env:\n        CI_CHECKS_SPEC: ${{ inputs.spce }}\n      run: echo hi\n"
    )
    with pytest.raises(ExpressionError, match="inputs.spce does not exist"):
        run_composite(str(action), {}, workspace=str(tmp_path), temp=str(tmp_path))
    with pytest.raises(ExpressionError, match="unexpected inputs"):
        run_composite(str(action), {"specc": "x"}, workspace=str(tmp_path), temp=str(tmp_path))


# ---------------------------------------------------------------- setup


@pytest.fixture
def scratch_venv(tmp_path: Path) -> Path:
    """A fresh venv that sees this environment's packages (torch, setuptools) through a .pth file, so the setup
    action's pip installs run for real, offline, without touching the development venv."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    import sysconfig

    purelib = sysconfig.get_paths()["purelib"]
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "dev_env.pth").write_text(purelib + "\n")
    return venv


def test_setup_installs_the_kit_of_its_own_ref_and_reports_versions(run, scratch_venv, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("requests\n")  # already satisfied: no download
    env = {
        "PATH": f"{scratch_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    # `python -m pip` in the scratch venv is the development pip, found through the .pth file.
    result = run(
        "setup",
        {"python-version": "", "torch": "none", "extras": "", "requirements": "requirements.txt"},
        workspace=project,
        env=env,
    )
    assert result.outcome == "success", result.log
    assert result.skipped_uses == []  # python-version '' keeps the runner's python: setup-python is skipped
    import ci_checks
    import torch

    assert result.outputs["ci-checks-version"] == ci_checks.__version__
    assert result.outputs["torch-version"] == torch.__version__
    assert result.outputs["python-version"] == ".".join(map(str, sys.version_info[:3]))
    assert (scratch_venv / "bin" / "ci-checks").exists(), "the kit's console script is in the scratch venv"
    assert result.step("Install ci-checks from this action's ref").outcome == "success"
    assert result.step("Pull DVC-tracked data").outcome == "skipped"


def test_setup_uses_setup_python_and_refuses_an_unknown_torch_build(run, tmp_path):
    result = run("setup", {"torch": "rocm", "install-ci-checks": "false"}, workspace=tmp_path)
    assert result.skipped_uses == ["actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97"]
    assert result.outcome == "failure"
    failed = result.step("Install PyTorch")
    assert failed.returncode == 2 and "torch must be cpu, cuda or none, got 'rocm'" in failed.log


@pytest.fixture
def pip_shim(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `python` first on PATH that records `python -m pip ...` calls instead of installing, can pretend a module
    is missing, and runs the real interpreter for everything else."""
    shims, record = tmp_path / "shims", tmp_path / "pip-calls.txt"
    shims.mkdir()
    (shims / "python").write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "${1:-} ${2:-}" == "-m pip" ]]; then shift 2; echo "$*" >> "' + str(record) + '"; exit 0; fi\n'
        'if [[ "${1:-}" == "-c" && "${2:-}" == "import ${SHIM_MISSING:-none}" ]]; then exit 1; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    (shims / "python").chmod(0o755)
    return {"PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}, record


@pytest.mark.parametrize(
    ("extras", "package"),
    [
        pytest.param("torch,report", "[torch,report]", id="default"),
        pytest.param(",onnx", "[onnx]", id="empty-list-plus-one"),
        pytest.param(" torch , report,,dvc, ", "[torch,report,dvc]", id="spaces-and-empty-entries"),
        pytest.param("", "", id="none"),
        pytest.param(" , ", "", id="only-separators"),
    ],
)
def test_setup_installs_valid_extras_whatever_the_list_looks_like(run, tmp_path, pip_shim, extras, package):
    env, record = pip_shim
    result = run("setup", {"python-version": "", "torch": "none", "extras": extras}, workspace=tmp_path, env=env)
    assert result.outcome == "success", result.log
    calls = record.read_text().splitlines()
    assert calls == [f"install --disable-pip-version-check {ACTIONS / 'setup'}/../..{package}"], calls


def test_setup_creates_and_activates_a_virtual_environment(run, tmp_path):
    """The GPU tier's set-up: the later steps (and the job's later steps) run the venv's python and pip."""
    venv = tmp_path / "runner-temp" / "ci-checks-venv"
    result = run(
        "setup",
        {"python-version": "", "torch": "none", "install-ci-checks": "false", "venv": str(venv)},
        workspace=tmp_path,
    )
    assert result.outcome == "success", result.log
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert result.path == [f"{venv}/bin"] and result.env["VIRTUAL_ENV"] == str(venv)
    # The versions step ran the venv's python: the development install of ci-checks is not in it.
    assert result.outputs["ci-checks-version"] == "none"
    assert result.step("Create and activate a virtual environment").outcome == "success"


def test_setup_pulls_dvc_data_from_a_local_remote(run, tmp_path, git_repo):
    pytest.importorskip("dvc")
    repo, remote = git_repo.init(tmp_path / "project"), tmp_path / "remote"
    project = repo.root
    dvc = [sys.executable, "-m", "dvc"]
    for cmd in ([*dvc, "init", "-q"], [*dvc, "remote", "add", "-d", "local", str(remote)]):
        repo.run(*cmd)
    (project / "weights.bin").write_bytes(b"\x00" * 1000)
    for cmd in ([*dvc, "add", "-q", "weights.bin"], [*dvc, "push", "-q"]):
        repo.run(*cmd)
    (project / "weights.bin").unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    result = run(
        "setup",
        {"python-version": "", "torch": "none", "install-ci-checks": "false", "dvc-pull": "true"},
        workspace=project,
    )
    assert result.outcome == "success", result.log
    assert (project / "weights.bin").read_bytes() == b"\x00" * 1000


# ---------------------------------------------------------------- lint


@pytest.fixture
def hooked_repo(tmp_path: Path, git_repo) -> Path:
    """A git repository with a pre-commit config whose one hook (pygrep: nothing to install) forbids 'XXX'."""
    repo = git_repo.init(tmp_path / "repo")
    config = (
        "repos:\n  - repo: local\n    hooks:\n      - id: no-xxx\n        name: no XXX markers\n"
        "        entry: XXX\n        language: pygrep\n        types: [python]\n"
    )
    repo.commit({".pre-commit-config.yaml": config, "code.py": "x = 1\n"}, "base")
    return repo.root


def test_lint_runs_pre_commit_on_every_file(run, hooked_repo, git_repo):
    env = {"PRE_COMMIT_HOME": str(hooked_repo.parent / "pre-commit-home")}
    ok = run("lint", {"install-pre-commit": "false"}, workspace=hooked_repo, env=env)
    assert ok.outcome == "success", ok.log
    assert re.search(r"no XXX markers\.+Passed", re.sub(r"\x1b\[[0-9;]*m", "", ok.log))
    (hooked_repo / "code.py").write_text("x = 1  # XXX\n")
    git_repo(hooked_repo).git("add", "-A")
    bad = run("lint", {"install-pre-commit": "false", "hook": "no-xxx"}, workspace=hooked_repo, env=env)
    assert bad.outcome == "failure"
    assert "code.py:1:x = 1  # XXX" in bad.log


def test_lint_from_ref_checks_only_changed_files(run, hooked_repo, git_repo):
    env = {"PRE_COMMIT_HOME": str(hooked_repo.parent / "pre-commit-home")}
    repo = git_repo(hooked_repo)
    base = repo.commit({"old.py": "XXX = 'committed before the base'\n"}, "old marker")
    repo.commit({"new.py": "y = 2\n"}, "clean change")
    result = run("lint", {"install-pre-commit": "false", "from-ref": base}, workspace=hooked_repo, env=env)
    assert result.outcome == "success", result.log


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> str:
    """One pre-commit cache for the module: the default hooks are installed once (from PyPI)."""
    return str(tmp_path_factory.mktemp("pre-commit-home"))


@pytest.fixture
def unconfigured_repo(tmp_path: Path, git_repo) -> Any:
    """A git repository without a .pre-commit-config.yaml: unformatted, but without bugs."""
    repo = git_repo.init(tmp_path / "plain")
    repo.commit({"code.py": "x=1;y = [ x ]\n", "pyproject.toml": "[project]\nname = 'plain'\n"}, "base")
    return repo


def test_lint_without_a_config_runs_the_default_hooks(run, unconfigured_repo, pre_commit_home):
    env = {"PRE_COMMIT_HOME": pre_commit_home}
    ok = run("lint", {"install-pre-commit": "false"}, workspace=unconfigured_repo.root, env=env)
    assert ok.outcome == "success", ok.log
    log = re.sub(r"\x1b\[[0-9;]*m", "", ok.log)
    assert "::notice title=ci-checks lint::no .pre-commit-config.yaml here: ran the kit's default hooks" in log
    assert re.search(r"flake8 \(syntax errors and undefined names\)\.+Passed", log), "style is not its business"
    assert re.search(r"check toml\.+Passed", log)
    unconfigured_repo.commit({"bug.py": "def f():\n    return undefined_name\n"}, "a bug")
    bad = run("lint", {"install-pre-commit": "false"}, workspace=unconfigured_repo.root, env=env)
    assert bad.outcome == "failure"
    assert "F821 undefined name 'undefined_name'" in re.sub(r"\x1b\[[0-9;]*m", "", bad.log)


@pytest.mark.parametrize(
    ("mode", "outcome", "message"),
    [
        pytest.param(
            "skip", "success", "::notice title=ci-checks lint::no .pre-commit-config.yaml here: lint skipped", id="skip"
        ),
        pytest.param("fail", "failure", "::error title=ci-checks lint::no .pre-commit-config.yaml here", id="fail"),
        pytest.param("lenient", "failure", "if-no-config must be default, skip or fail, got 'lenient'", id="bad"),
    ],
)
def test_lint_without_a_config_can_skip_or_fail(run, unconfigured_repo, mode, outcome, message):
    result = run("lint", {"install-pre-commit": "false", "if-no-config": mode}, workspace=unconfigured_repo.root)
    assert result.outcome == outcome
    assert message in result.log
    if mode == "skip":
        assert "ci-checks lint: skipped, no `.pre-commit-config.yaml`" in result.summary
    else:
        assert result.step("Run pre-commit").returncode == 2


def test_lint_default_config_is_valid():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "validate-config",
            str(ACTIONS / "lint" / "default-pre-commit-config.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------- pytest


@pytest.fixture
def pytest_project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_a.py").write_text(
        "import pytest\n\ndef test_ok():\n    assert True\n\n@pytest.mark.skip(reason='demo')\ndef test_skipped():\n"
        "    pass\n\n@pytest.mark.slow\ndef test_slow():\n    pass\n"
    )
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow tests\n")
    return project


def test_pytest_writes_junit_outputs_and_summary(run, pytest_project):
    result = run("pytest", {"markers": "not slow", "pytest-args": "-q -p no:cacheprovider"}, workspace=pytest_project)
    assert result.outcome == "success", result.log
    assert result.outputs == {
        "junit-xml": "results/junit.xml",
        "tests": "2",
        "failures": "0",
        "errors": "0",
        "skipped": "1",
    }
    assert (pytest_project / "results" / "junit.xml").is_file()
    assert "pytest: 1 passed, 0 failed, 0 errors, 1 skipped" in result.summary


def test_pytest_fails_and_still_summarises_the_failures(run, pytest_project):
    (pytest_project / "tests" / "test_b.py").write_text("def test_broken():\n    assert 1 == 2\n")
    result = run("pytest", {"paths": "tests/test_b.py", "pytest-args": "-p no:cacheprovider"}, workspace=pytest_project)
    assert result.outcome == "failure"
    assert result.step("Run pytest").returncode == 1
    assert result.step("summary").outcome == "success"  # if: always()
    assert result.outputs["failures"] == "1"
    assert ":x: pytest: 0 passed, 1 failed" in result.summary and "test_broken" in result.summary


def test_pytest_installs_pytest_when_the_python_has_none(run, pytest_project, pip_shim):
    env, record = pip_shim
    missing = run(
        "pytest",
        {"pytest-args": "-q -p no:cacheprovider"},
        workspace=pytest_project,
        env={**env, "SHIM_MISSING": "pytest"},
    )
    assert missing.outcome == "success", missing.log  # the shim only records the install; the real pytest runs
    assert record.read_text().splitlines() == ["install --disable-pip-version-check pytest>=8"]
    record.unlink()
    present = run("pytest", {"pytest-args": "-q -p no:cacheprovider"}, workspace=pytest_project, env=env)
    assert present.outcome == "success" and not record.exists(), "an installed pytest is kept"
    assert (
        "pytest 8" in present.step("Install pytest if missing").log
        or "pytest 9" in present.step("Install pytest if missing").log
    )
    off = run(
        "pytest",
        {"install-pytest": "false", "pytest-args": "-q -p no:cacheprovider"},
        workspace=pytest_project,
        env={**env, "SHIM_MISSING": "pytest"},
    )
    assert off.step("Install pytest if missing").outcome == "skipped" and not record.exists()


# ---------------------------------------------------------------- train-check


@pytest.fixture(scope="module")
def train_check_run(tmp_path_factory) -> Iterator[tuple[Any, Path]]:
    """One real train-check action run on the example (a subset of checks, with settings), shared by the tests."""
    temp = tmp_path_factory.mktemp("train-check")
    output = temp / "results" / "train-check.json"
    result = run_composite(
        str(ACTIONS / "train-check"),
        {
            "spec": "ci_spec.py:training_spec",
            "working-directory": "examples",
            "checks": "parameter-updates,loss-at-init,loss-decreases,memorization",
            "set": "memorization.max-steps=300\nloss-decreases.steps=5\n",
            "seed": "0",
            "threads": "2",
            "output": str(output),
            "export-parity": "true",  # the CPU tier in one process: the example's golden suite too
            "golden": "true",
            "install-ci-checks": "false",
        },
        workspace=str(ROOT),
        temp=str(temp),
    )
    yield result, output


def test_train_check_passes_on_the_example(train_check_run):
    result, output = train_check_run
    assert result.outcome == "success", result.log
    assert result.outputs == {"status": "pass", "exit-code": "0", "results": str(output)}
    document = json.loads(output.read_text())
    assert [c["check"] for c in document["checks"]] == [
        "parameter-updates",
        "loss-at-init",
        "loss-decreases",
        "memorization",
        "onnx-export",
        "onnx-parity",
        "onnx-latency",
        "golden hard-examples",
    ]
    assert document["subject"]["settings"]["memorization"]["max-steps"] == 300
    assert "memorization" in result.summary  # the Markdown table in the job summary


def test_train_check_fails_on_the_buggy_example(run, tmp_path):
    output = tmp_path / "buggy.json"
    result = run(
        "train-check",
        {
            "spec": "buggy_spec.py:training_spec",
            "working-directory": "examples",
            "checks": "parameter-updates",
            "set": "memorization.max-steps=20",
            "output": str(output),
            "install-ci-checks": "false",
        },
    )
    assert result.outcome == "failure"
    assert result.outputs["status"] == "fail" and result.outputs["exit-code"] == "1"
    step = result.step("train-check")
    assert step.returncode == 1
    assert "::error" in step.log and "zero_grad" in step.log
    assert json.loads(output.read_text())["status"] == "fail"


def test_train_check_bad_spec_exits_2(run, tmp_path):
    result = run(
        "train-check",
        {
            "spec": "no_such_spec.py:training_spec",
            "working-directory": "examples",
            "output": str(tmp_path / "r.json"),
            "install-ci-checks": "false",
        },
    )
    assert result.outcome == "failure"
    assert result.step("train-check").returncode == 2
    assert "no_such_spec.py" in result.step("train-check").log


def test_train_check_threads_default_is_the_clis_everywhere(capsys):
    """The action's '' means the CLI's --threads default; the action, --help and the docs say the same number."""
    from ci_checks.commands.train_check import DEFAULT_THREADS
    from ci_checks.main import main

    description = load_yaml(str(ACTIONS / "train-check" / "action.yml"))["inputs"]["threads"]["description"]
    action = re.fullmatch(r"torch intra-op threads\. Default '' \(the CLI default, (\d+) threads?\b.*\)\.", description)
    with pytest.raises(SystemExit):
        main(["train-check", "--help"])
    cli = re.search(
        r"--threads N +torch intra-op threads \(default: (\d+)\)", " ".join(capsys.readouterr().out.split())
    )
    assert action and cli, (description, cli)
    assert int(action[1]) == int(cli[1]) == DEFAULT_THREADS
    assert f"| `threads` | '' | {description} |" in (ROOT / "docs" / "workflows.md").read_text()
    for page in ("train-check.md", "configuration.md"):
        text = " ".join((ROOT / "docs" / page).read_text().split())
        found = re.search(r"`--threads N` \(torch intra-op threads,[^)]*?default (\d+)\)", text)
        assert found and int(found[1]) == DEFAULT_THREADS, page


# ---------------------------------------------------------------- compare


@pytest.mark.parametrize(
    ("head_accuracy", "expected"),
    [
        pytest.param(0.91, ("success", "0"), id="unchanged-passes"),
        pytest.param(0.50, ("failure", "1"), id="regression-fails"),
    ],
)
def test_compare_against_the_base_commit(run, tmp_path, git_repo, head_accuracy, expected):
    repo = tmp_path / "repo"
    base = git_repo.init(repo).commit(
        {
            "pyproject.toml": '[tool.ci-checks.compare]\nfiles = ["metrics.json"]\ndvc = false\nfetch-depth = 0\n',
            "metrics.json": {"accuracy": 0.91},
        },
        "base",
    )
    (repo / "metrics.json").write_text(json.dumps({"accuracy": head_accuracy}))
    result = run("compare", {"base": base, "fail-on": "regressed", "install-ci-checks": "false"}, workspace=repo)
    assert (result.outcome, result.outputs["exit-code"]) == expected, result.log
    assert result.outputs["results"] == "results/compare.json"
    assert json.loads((repo / "results" / "compare.json").read_text())["command"] == "compare"


def test_compare_with_train_check_results_of_base_and_head(run, train_check_run, tmp_path):
    _, results = train_check_run
    result = run(
        "compare",
        {
            "base-results": str(results),
            "head-results": str(results),
            "working-directory": "examples",
            "output": str(tmp_path / "compare.json"),
            "install-ci-checks": "false",
        },
    )
    assert result.outcome == "success", result.log
    assert result.outputs["status"] == "pass"


@pytest.fixture
def repo_without_metrics(tmp_path: Path, git_repo, compare_env) -> Path:
    repo = git_repo.init(tmp_path / "adopting")
    repo.commit({"pyproject.toml": "[project]\nname = 'x'\n"}, "main, before ci-checks")
    return repo.root


def test_compare_with_no_baseline_yet_is_neutral(run, repo_without_metrics, train_check_run):
    """The pull request that adopts ci-checks: the base has no train-check results and there are no metrics."""
    _, head = train_check_run
    result = run(
        "compare",
        {"base": "main", "head-results": str(head), "install-ci-checks": "false"},
        workspace=repo_without_metrics,
    )
    assert result.outcome == "success", result.log
    assert "::notice title=ci-checks compare::no baseline on main yet" in result.log
    assert "nothing to compare" in result.log, "compare's own line says what it looked for"
    assert result.outputs == {"status": "skip", "exit-code": "2", "results": ""}
    assert "ci-checks compare: no baseline on `main` yet" in result.summary


def test_compare_with_nothing_to_compare_still_fails_without_the_no_baseline_signal(run, repo_without_metrics):
    result = run("compare", {"base": "main", "install-ci-checks": "false"}, workspace=repo_without_metrics)
    assert result.outcome == "failure" and result.step("compare").returncode == 2
    assert "no baseline" not in result.log


def test_compare_with_no_baseline_still_fails_on_a_regressed_metric(
    run, tmp_path, git_repo, train_check_run, compare_env
):
    """No train-check results on the base does not mean no metrics: a regression there still fails."""
    _, head = train_check_run
    repo = tmp_path / "repo"
    git_repo.init(repo).commit(
        {"pyproject.toml": '[tool.ci-checks.compare]\nfiles = ["metrics.json"]\n', "metrics.json": {"accuracy": 0.9}},
        "base",
    )
    (repo / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    result = run("compare", {"base": "main", "head-results": str(head), "install-ci-checks": "false"}, workspace=repo)
    assert result.outcome == "failure" and result.outputs["exit-code"] == "1", result.log
    assert "no baseline" not in result.log


# ---------------------------------------------------------------- report


@pytest.fixture
def results_dir(train_check_run, tmp_path) -> Path:
    _, results = train_check_run
    folder = tmp_path / "project"
    (folder / "results").mkdir(parents=True)
    shutil.copy(results, folder / "results" / "train-check.json")
    return folder


def test_report_renders_the_summary_without_commenting(run, results_dir):
    result = run(
        "report",
        {"comment": "none", "results": "results/*.json results/missing.json", "install-ci-checks": "false"},
        workspace=results_dir,
    )
    assert result.outcome == "success", result.log
    assert result.outputs["status"] == "pass" and result.outputs["report"] == "results/report.md"
    assert result.outputs["comment-url"] == ""
    report = (results_dir / "results" / "report.md").read_text()
    assert "ci-checks report" in report and report in result.summary
    assert "missing.json not found, skipped" in result.log
    assert result.step("comment").outcome == "skipped"


def test_report_refuses_an_unknown_comment_tool(run, results_dir):
    result = run("report", {"comment": "gh", "install-ci-checks": "false"}, workspace=results_dir)
    assert result.outcome == "failure"
    assert "comment must be builtin, cml or none, got 'gh'" in result.step("report").log


class _FakeGitHub(BaseHTTPRequestHandler):
    """The two REST calls of a first sticky comment: list the PR's comments (none yet), create one."""

    calls: list[tuple[str, str, Any]] = []

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(("GET", self.path, self.headers.get("Authorization")))
        if self.path.startswith("/user"):
            self._reply(403, {"message": "Resource not accessible by integration"})
        else:
            self._reply(200, [])

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append(("POST", self.path, body))
        self._reply(
            201,
            {
                "id": 42,
                "html_url": "https://github.com/owner/repo/pull/7#issuecomment-42",
                "body": body.get("body", ""),
                "user": {"login": "github-actions[bot]", "type": "Bot"},
            },
        )

    def log_message(self, *args: Any) -> None:
        pass


def test_report_posts_with_the_builtin_poster(run, results_dir, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGitHub)
    _FakeGitHub.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    try:
        result = run(
            "report",
            {"comment": "builtin", "github-token": "t0ken", "marker": "self-test", "install-ci-checks": "false"},
            workspace=results_dir,
            env={
                "GITHUB_API_URL": f"http://127.0.0.1:{server.server_port}",
                "GITHUB_EVENT_PATH": str(event),
                "CI_CHECKS_RETRY_BASE_SECONDS": "0",
            },
        )
    finally:
        server.shutdown()
    assert result.outcome == "success", result.log
    assert result.outputs["comment-action"] == "created"
    assert result.outputs["comment-url"].endswith("#issuecomment-42")
    posts = [c for c in _FakeGitHub.calls if c[0] == "POST"]
    assert len(posts) == 1 and posts[0][1] == "/repos/owner/repo/issues/7/comments"
    assert "self-test" in posts[0][2]["body"]
    assert all(c[2] in (None, "Bearer t0ken", "token t0ken") for c in _FakeGitHub.calls if c[0] == "GET")


@pytest.mark.parametrize("publish", ["false", "true"])
def test_report_posts_with_cml_telemetry_off(run, results_dir, tmp_path, publish):
    """npm and cml are stand-ins that record what they were asked; the real ones need the network."""
    shims = tmp_path / "shims"
    shims.mkdir()
    record = tmp_path / "cml-call.txt"
    (shims / "npm").write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\nprefix=''\nwhile (( $# )); do\n"
        "  if [[ $1 == --prefix ]]; then prefix=$2; shift; fi\n  last=$1; shift\ndone\n"
        'mkdir -p "$prefix/node_modules/.bin"\n'
        f'echo "npm-installed $last" > {record}\n'
        "cat > \"$prefix/node_modules/.bin/cml\" <<'EOF'\n#!/usr/bin/env bash\n"
        f'{{ echo "args: $*"; echo "token: ${{REPO_TOKEN:-}}"; '
        f'echo "track: ${{ITERATIVE_DO_NOT_TRACK:-}}"; }} >> {record}\n'
        'EOF\nchmod +x "$prefix/node_modules/.bin/cml"\n'
    )
    (shims / "npm").chmod(0o755)
    result = run(
        "report",
        {"comment": "cml", "github-token": "t0ken", "cml-publish-images": publish, "install-ci-checks": "false"},
        workspace=results_dir,
        env={"PATH": os.pathsep.join([str(shims), os.path.dirname(sys.executable), os.environ["PATH"]])},
    )
    assert result.outcome == "success", result.log
    lines = record.read_text().splitlines()
    assert lines[0] == "npm-installed @dvcorg/cml@0.20.4"
    flag = "--publish" if publish == "true" else "--no-publish"
    assert lines[1] == (
        f"args: comment update --target=pr --watermark-title=ci-checks-report {flag} " "results/report.md"
    )
    assert lines[2:] == ["token: t0ken", "track: 1"]


# ---------------------------------------------------------------- rerun, export-parity


def test_rerun_refuses_a_ref_that_does_not_exist(run, tmp_path):
    result = run(
        "rerun",
        {
            "ref": "no-such-ref-7f3a",
            "working-directory": "examples",
            "device": "cpu",
            "output": str(tmp_path / "rerun.json"),
            "install-ci-checks": "false",
        },
    )
    assert result.outcome == "failure"
    assert result.step("rerun").returncode == 2, result.log
    assert "no-such-ref-7f3a" in result.step("rerun").log


def test_export_parity_passes_on_the_example(run, tmp_path):
    pytest.importorskip("onnxruntime")
    output = tmp_path / "export-parity.json"
    result = run(
        "export-parity",
        {
            "spec": "ci_spec.py:training_spec",
            "working-directory": "examples",
            "atol": "1e-4",
            "output": str(output),
            "install-ci-checks": "false",
        },
    )
    assert result.outcome == "success", result.log
    assert result.outputs == {"status": "pass", "exit-code": "0", "results": str(output)}
    assert json.loads(output.read_text())["status"] == "pass"


def test_quality_passes_on_the_example_and_fails_on_a_bad_spec(run, tmp_path):
    output = tmp_path / "quality.json"
    result = run(
        "quality",
        {"working-directory": "examples", "output": str(output), "install-ci-checks": "false"},
    )
    assert result.outcome == "success", result.log
    assert result.outputs == {"status": "pass", "exit-code": "0", "results": str(output)}
    checks = [c["check"] for c in json.loads(output.read_text())["checks"]]
    assert checks[:3] == ["quality slices", "quality behaviour", "quality calibration"]
    bad = run("quality", {"working-directory": "examples", "spec": "no_such.py:q", "install-ci-checks": "false"})
    assert bad.outcome == "failure" and bad.step("quality").returncode == 2


def test_data_check_passes_on_the_example_and_fails_on_bad_data(run, tmp_path):
    result = run(
        "data-check",
        {
            "datasets": "points",
            "working-directory": "examples",
            "base": "HEAD",
            "output-dir": str(tmp_path / "ok"),
            "install-ci-checks": "false",
        },
    )
    assert result.outcome == "success", result.log
    assert result.outputs["status"] == "pass" and result.outputs["exit-code"] == "0", result.outputs
    assert json.loads((tmp_path / "ok" / "data-stats.json").read_text())["checks"][0]["check"] == "stats: points"
    (tmp_path / "pyproject.toml").write_text('[tool.ci-checks.data.datasets.points]\npath = "points.csv"\nkey = "id"\n')
    (tmp_path / "points.csv").write_text("id,x\n1,0.5\n1,0.7\n")
    bad = run(
        "data-check",
        {"working-directory": str(tmp_path), "output-dir": "out", "install-ci-checks": "false"},
        workspace=tmp_path,
    )
    assert bad.outcome == "failure"
    assert bad.outputs["status"] == "fail" and bad.outputs["exit-code"] == "1", bad.outputs
    assert "column 'id': unique" in bad.step("check").log


# ---------------------------------------------------------------- rollback, score


def test_rollback_fails_on_a_release_without_its_artifact(run, tmp_path, git_repo):
    repo = git_repo.init(tmp_path / "project")
    config = '[tool.ci-checks]\nspec = "spec.py:spec"\n\n[tool.ci-checks.rollback]\nartifact = "m.pt"\n'
    repo.commit({"pyproject.toml": config})
    repo.commit({"spec.py": "def spec():\n    return {}\n"}, message="release without its weights")
    repo.git("tag", "v1.0.0")
    repo.commit({"README.md": "later\n"})
    output = tmp_path / "rollback.json"
    result = run(
        "rollback",
        {"output": str(output), "install-ci-checks": "false"},
        workspace=repo.path,
    )
    assert result.outcome == "failure"
    assert result.outputs == {"status": "fail", "exit-code": "1", "results": str(output)}, result.log
    assert json.loads(output.read_text())["subject"]["to"] == "v1.0.0"


def test_rollback_refuses_a_ref_that_does_not_exist(run, tmp_path):
    result = run(
        "rollback",
        {
            "to": "no-such-ref-7f3a",
            "artifact": "models/model.pt",
            "working-directory": "examples",
            "install-ci-checks": "false",
        },
    )
    assert result.outcome == "failure"
    assert result.step("rollback").returncode == 2, result.log
    assert "no-such-ref-7f3a" in result.step("rollback").log


def test_score_scores_this_repository(run, tmp_path):
    output = tmp_path / "score.json"
    result = run("score", {"output": str(output), "install-ci-checks": "false"})
    assert result.outcome == "success", result.log
    assert result.outputs == {"exit-code": "0", "results": str(output)}
    doc = json.loads(output.read_text())
    assert doc["command"] == "score" and len(doc["checks"][0]["figures"]["tests"]) == 28
    assert "ML Test Score" in result.step("score").log


# ---------------------------------------------------------------- deprecated aliases (removed in v0.2.0)


@pytest.mark.parametrize(("old", "new"), DEPRECATED.items(), ids=list(DEPRECATED))
def test_deprecated_alias_forwards_every_input_and_output(old, new):
    alias, target = (load_yaml(str(ACTIONS / name / "action.yml")) for name in (old, new))
    assert alias["description"].startswith(f"Deprecated: use actions/{new}; removed in v0.2.0.")
    assert alias["inputs"] == target["inputs"], "the same inputs, descriptions and defaults"
    warn, forward = alias["runs"]["steps"]
    assert (
        f"::warning title=ci-checks::actions/{old} is deprecated: use actions/{new}; removed in v0.2.0" in warn["run"]
    )
    assert forward["uses"] == f"$/actions/{new}" and "if" not in forward
    assert forward["with"] == {name: f"${{{{ inputs.{name} }}}}" for name in target["inputs"]}
    assert {name: spec["description"] for name, spec in alias["outputs"].items()} == {
        name: spec["description"] for name, spec in target["outputs"].items()
    }
    assert {name: spec["value"] for name, spec in alias["outputs"].items()} == {
        name: f"${{{{ steps.{forward['id']}.outputs.{name} }}}}" for name in target["outputs"]
    }


def test_every_deprecated_alias_is_listed():
    described = {
        n for n in ACTION_NAMES if load_yaml(str(ACTIONS / n / "action.yml"))["description"].startswith("Deprecated")
    }
    assert described == set(DEPRECATED)


def test_deprecated_test_alias_runs_actions_pytest_and_warns(run, pytest_project):
    inputs = {"markers": "not slow", "pytest-args": "-q -p no:cacheprovider"}
    new = run("pytest", inputs, workspace=pytest_project)
    old = run("test", inputs, workspace=pytest_project)
    assert (old.outcome, old.outputs) == (new.outcome, new.outputs) == ("success", old.outputs), old.log
    assert old.outputs["tests"] == "2"
    assert "::warning title=ci-checks::actions/test is deprecated: use actions/pytest" in old.steps[0].log
    assert old.step("pytest").nested is not None and "warning" not in new.log


def test_deprecated_rerun_training_alias_runs_actions_rerun_and_warns(run, tmp_path):
    inputs = {"ref": "no-such-ref-7f3a", "working-directory": "examples", "device": "cpu", "install-ci-checks": "false"}
    new = run("rerun", {**inputs, "output": str(tmp_path / "new.json")})
    old = run("rerun-training", {**inputs, "output": str(tmp_path / "new.json")})
    assert "::warning title=ci-checks::actions/rerun-training is deprecated: use actions/rerun" in old.steps[0].log
    assert (old.outcome, old.outputs) == (new.outcome, new.outputs) and old.outcome == "failure"
    assert old.step("rerun").returncode == 2, old.log
