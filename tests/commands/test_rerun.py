"""rerun: replay a recorded run of the example (real git, real DVC with a local remote) on CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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
        # The example's own DVC state (a run of it in place) is not part of the recorded project made here.
        ignore=shutil.ignore_patterns(
            "data", "models", "metrics", "plots", "__pycache__", "tests", "*.py[co]", ".dvc", ".dvcignore", "dvc.lock"
        ),
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
    assert len(list((recorded / ".ci-checks" / "rerun").glob("v1.*.json"))) == 1  # kept for --resume
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


# ---------------------------------------------------------------- owned workspaces, time limits, interrupts
#
# A small recorded project without training: its pipeline writes metrics.json from value.txt, so a replay takes
# a fraction of a second. What it does besides is told by files the test writes (block, spawn) and it says where it
# is by files it writes (marker files with its pids): the tests wait on those, never on the clock.

PIPELINE = """
import json, os, subprocess, sys, threading

def wait_forever():
    threading.Event().wait(600)

here = os.path.dirname(os.path.abspath(__file__))
control = os.environ["RERUN_TEST_CONTROL"]
value = float(open(os.path.join(here, "value.txt")).read())
extra = os.path.join(here, "extra.txt")
if os.path.exists(extra):
    value += float(open(extra).read())
for link in ("data-link", "dangling-link"):
    if os.path.islink(os.path.join(here, link)):
        open(os.path.join(control, link + ".seen"), "w").write(os.readlink(os.path.join(here, link)))
if os.path.exists(os.path.join(control, "block")):
    claim = os.path.join(control, "claimed")
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        first = True
    except FileExistsError:
        first = False
    if first:
        child = subprocess.Popen([sys.executable, "-c", "import threading; threading.Event().wait(600)"])
        with open(os.path.join(control, "pids.tmp"), "w") as fh:
            fh.write(f"{os.getpid()} {child.pid} {here}")
        os.replace(os.path.join(control, "pids.tmp"), os.path.join(control, "pids"))
        release = os.path.join(control, "release")
        while not os.path.exists(release):
            threading.Event().wait(0.02)
        child.kill()
json.dump({"accuracy": value}, open(os.path.join(here, "metrics.json"), "w"))
"""

DVC_YAML = (
    "stages:\n  train:\n    cmd: python pipeline.py\n    metrics:\n      - metrics.json:\n          cache: false\n"
)
PYPROJECT = (
    '[tool.ci-checks.rerun]\nruns = [{name = "baseline", ref = "v1"}]\n'
    '[tool.ci-checks.metrics."*accuracy"]\nabs-tol = 0.01\n'
)
COMMAND = ["--command", "python pipeline.py", "--device", "cpu"]


class Mini:
    """The recorded project, its control folder and the ways of running ci-checks rerun on it."""

    def __init__(self, repo: Any, control: Path) -> None:
        self.repo = repo
        self.path: Path = repo.path
        self.control = control

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.repo.ENV,
            "RERUN_TEST_CONTROL": str(self.control),
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
        }

    def argv(self, *args: str, script: str | None = None) -> list[str]:
        head = [sys.executable, "-c", script, "rerun"] if script else [sys.executable, "-m", "ci_checks", "rerun"]
        return [*head, *COMMAND, "--format", "json", "--output", str(self.control / "out.json"), *args]

    def run(self, *args: str) -> tuple[int, dict[str, Any], str]:
        proc = subprocess.run(self.argv(*args), cwd=self.path, env=self.env(), capture_output=True, text=True)
        out = self.control / "out.json"
        return proc.returncode, json.loads(out.read_text()) if out.exists() else {}, proc.stderr

    def start(self, *args: str, script: str | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args, script=script),
            cwd=self.path,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(self, name: str, proc: subprocess.Popen[str] | None = None) -> Path:
        """Wait until the file `name` appears in the control folder (60 s at most, as a safety net)."""
        path = self.control / name
        deadline = time.monotonic() + 60
        while not path.exists():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"ci-checks exited {proc.returncode} before {name}: {proc.communicate()}")
            assert time.monotonic() < deadline, f"{name} never appeared"
            time.sleep(0.01)
        return path

    def worktrees(self) -> list[str]:
        lines = self.repo.git("worktree", "list", "--porcelain").splitlines()
        return [line.split(" ", 1)[1] for line in lines if line.startswith("worktree ")]

    def status(self) -> str:
        return self.repo.git("status", "--porcelain", "--ignored", "--untracked-files=all")


@pytest.fixture
def mini(tmp_path: Path, git_repo: Any) -> Mini:
    project = git_repo.init(tmp_path / "project")
    project.commit(
        {
            "pipeline.py": PIPELINE,
            "dvc.yaml": DVC_YAML,
            "value.txt": "0.9",
            "metrics.json": {"accuracy": 0.9},
            ".gitignore": "__pycache__/\n",
        },
        "record run v1",
    )
    project.git("tag", "v1")
    project.commit({"pyproject.toml": PYPROJECT}, "configure the rerun")
    control = tmp_path / "control"
    control.mkdir()
    return Mini(project, control)


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 30  # the kit waits for the group before it exits; this is a safety net
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not any(alive(p) for p in pids)


def test_a_replay_leaves_no_trace_in_the_repository(mini: Mini) -> None:
    before = mini.status()
    code, doc, err = mini.run()
    assert code == 0, err
    assert doc["checks"][0]["figures"]["returncode"] == 0
    assert mini.worktrees() == [str(mini.path)]
    assert not (mini.path / ".ci-checks").exists()
    assert mini.status() == before


def test_staged_edits_and_staged_new_files_are_the_code_replayed(mini: Mini) -> None:
    """A staged change that lowers the metric regresses: the replay ran the index, not HEAD."""
    (mini.path / "value.txt").write_text("0.5")
    (mini.path / "extra.txt").write_text("0.1")
    mini.repo.git("add", "value.txt", "extra.txt")
    code, doc, err = mini.run()
    assert code == 1, err
    accuracy = next(c for c in doc["checks"] if c["check"] == "baseline: metrics.json:accuracy")["figures"]
    assert accuracy["verdict"] == "regressed" and accuracy["head"] == pytest.approx(0.6)
    assert mini.repo.git("diff", "--cached", "--name-only").split() == ["extra.txt", "value.txt"]  # index untouched


def test_unstaged_deletion_and_untracked_files_are_replayed(mini: Mini) -> None:
    (mini.path / "extra.txt").write_text("0.05")  # untracked
    code, doc, err = mini.run()
    assert code == 0, err
    accuracy = next(c for c in doc["checks"] if c["check"] == "baseline: metrics.json:accuracy")["figures"]
    assert accuracy["head"] == pytest.approx(0.95)


def test_untracked_symlinks_are_replayed_as_links(mini: Mini) -> None:
    (mini.path / "data").mkdir()
    (mini.path / "data-link").symlink_to("data")  # a link to a folder
    (mini.path / "dangling-link").symlink_to("nowhere")
    before = mini.status()
    code, _, err = mini.run()
    assert code == 0, err
    assert (mini.control / "data-link.seen").read_text() == "data"
    assert (mini.control / "dangling-link.seen").read_text() == "nowhere"
    assert mini.worktrees() == [str(mini.path)] and mini.status() == before


def test_an_existing_workdir_is_never_emptied_or_given_a_gitignore(mini: Mini, tmp_path: Path) -> None:
    workdir = tmp_path / "scratch"
    (workdir / "baseline").mkdir(parents=True)
    (workdir / "baseline" / "notes.txt").write_text("mine")
    (workdir / "other.txt").write_text("mine too")
    code, _, err = mini.run("--workdir", str(workdir))
    assert code == 0, err
    assert sorted(p.name for p in workdir.iterdir()) == ["baseline", "other.txt"]
    assert (workdir / "baseline" / "notes.txt").read_text() == "mine"
    assert mini.worktrees() == [str(mini.path)]


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "inf"])
def test_an_invalid_time_limit_is_bad_input(mini: Mini, minutes: str) -> None:
    code, _, err = mini.run("--timeout-minutes", minutes)
    assert code == 2
    assert err.startswith("ci-checks: error: --timeout-minutes must be a positive number") and err.count("\n") == 1


def test_a_silent_pipeline_is_stopped_at_the_limit_with_its_whole_process_group(mini: Mini) -> None:
    """The pipeline prints nothing and its child never ends: the limit fires anyway and both are gone."""
    (mini.control / "block").write_text("")
    start = time.monotonic()
    code, doc, err = mini.run("--timeout-minutes", "0.01")
    assert code == 1, err
    assert time.monotonic() - start < 45  # 0.6 s of limit and 10 s of grace, on the slowest machine
    assert "did not finish within 0.01 min and was stopped" in doc["checks"][0]["findings"][0]["message"]
    pids = [int(p) for p in (mini.control / "pids").read_text().split()[:2]]
    assert gone(pids)
    assert mini.worktrees() != [str(mini.path)]  # kept for --resume
    (mini.control / "block").unlink()
    code, doc, err = mini.run("--resume")
    assert code == 0, err
    assert doc["checks"][0]["figures"]["resumed"] is True
    assert mini.worktrees() == [str(mini.path)] and not (mini.path / ".ci-checks").exists()


PAUSE = """
import importlib, os, sys, threading
from ci_checks.main import main

control, where = os.environ["RERUN_TEST_CONTROL"], os.environ["RERUN_TEST_PAUSE"]
module, _, attr = where.rpartition(".")
target = importlib.import_module(module)
real = getattr(target, attr)

def paused(*args, **kwargs):
    open(os.path.join(control, "paused"), "w").close()
    go = os.path.join(control, "go")
    for _ in range(3000):  # a signal the kit holds does not end this wait: the test then writes "go"
        if os.path.exists(go):
            break
        threading.Event().wait(0.02)
    return real(*args, **kwargs)

setattr(target, attr, paused)
sys.exit(main(sys.argv[1:]))
"""

INTERRUPT_POINTS = [
    pytest.param("ci_checks._git.changed_files", id="copying-the-workspace"),
    pytest.param("ci_checks.commands.rerun._restore_data", id="restoring-the-data"),
    pytest.param(None, id="pipeline-running"),
    pytest.param("ci_checks._git.remove_worktree", id="removing-the-workspace"),
]


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")])
@pytest.mark.parametrize("pause", INTERRUPT_POINTS)
def test_an_interrupt_at_any_point_leaves_nothing_behind(mini: Mini, sig: signal.Signals, pause: str | None) -> None:
    """SIGINT or SIGTERM while the workspace is built, the data restored, the pipeline runs (a child of its own
    included) or the workspace is removed: exit 130, no process, worktree, workspace or results file left, and the
    user's files, index and untracked files as they were."""
    (mini.path / "staged.txt").write_text("the user's staged file")
    mini.repo.git("add", "staged.txt")
    (mini.path / "untracked.txt").write_text("the user's untracked file")
    (mini.path / "value.txt").write_text("0.9\n")  # an unstaged edit
    (mini.control / "out.json").write_text("{}")  # an earlier run's results: never read as this run's
    before = mini.status()
    files = {p: p.read_bytes() for p in mini.path.iterdir() if p.is_file()}
    if pause is None:
        (mini.control / "block").write_text("")
    proc = subprocess.Popen(
        mini.argv(script=PAUSE if pause else None),
        cwd=mini.path,
        env={**mini.env(), "RERUN_TEST_PAUSE": pause or ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    mini.wait_for("paused" if pause else "pids", proc)
    proc.send_signal(sig)
    (mini.control / "go").write_text("")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "ci-checks: interrupted" in err and "Traceback" not in err
    if pause is None:
        assert gone([int(p) for p in (mini.control / "pids").read_text().split()[:2]])
    assert mini.worktrees() == [str(mini.path)]
    assert not (mini.path / ".ci-checks").exists()
    assert mini.status() == before
    assert {p: p.read_bytes() for p in mini.path.iterdir() if p.is_file()} == files
    assert not (mini.control / "out.json").exists()


def test_concurrent_replays_of_one_run_keep_their_own_workspaces(mini: Mini) -> None:
    """The first replay holds its pipeline; a second replay of the same run completes beside it, and neither
    removes the other's workspace."""
    (mini.control / "block").write_text("")
    first = mini.start()
    pids = mini.wait_for("pids", first).read_text().split()
    first_ws = pids[2]
    second = subprocess.run(
        [*mini.argv()[:-2], "--output", str(mini.control / "second.json")],
        cwd=mini.path,
        env=mini.env(),
        capture_output=True,
        text=True,
    )
    assert second.returncode == 0, second.stderr
    assert os.path.isdir(first_ws)  # still there: the second replay did not touch it
    (mini.control / "release").write_text("")
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert mini.worktrees() == [str(mini.path)]
    assert not (mini.path / ".ci-checks").exists()


def test_a_worktree_left_locked_by_a_killed_git_is_removed(mini: Mini, tmp_path: Path) -> None:
    """`git worktree add` killed half-way leaves a registered, locked worktree; removal still clears it."""
    from ci_checks import _git

    path = tmp_path / "ws"
    mini.repo.git("worktree", "add", "--detach", str(path), "HEAD")
    mini.repo.git("worktree", "lock", "--reason", "initializing", str(path))
    (path / ".git").unlink()  # as if git had been killed before writing it
    _git.remove_worktree(str(mini.path), str(path))
    assert mini.worktrees() == [str(mini.path)]
    assert not path.exists()


def _processes_under(folder: str) -> list[int]:
    """The processes whose working directory is inside folder."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == folder or cwd.startswith(folder + os.sep):
                found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the pipeline's processes through /proc")
def test_sigterm_stops_dvc_repro_and_the_training_process(mini: Mini) -> None:
    """Real DVC: SIGTERM while `dvc repro` runs a stage leaves neither DVC nor the stage's process running."""
    mini.repo.run(sys.executable, "-m", "dvc", "init", "-q")
    mini.repo.commit(message="dvc init")
    (mini.control / "block").write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_checks", "rerun", "--device", "cpu"],  # the default command: dvc repro --force
        cwd=mini.path,
        env=mini.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pipeline, child, workspace = mini.wait_for("pids", proc).read_text().split()
    running = _processes_under(workspace)
    assert int(pipeline) in running and len(running) >= 2, running  # dvc and the stage's python at least
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert gone([*running, int(child)])
    assert mini.worktrees() == [str(mini.path)]
    assert not (mini.path / ".ci-checks").exists()
