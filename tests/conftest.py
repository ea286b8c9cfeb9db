"""Shared tiny specs: a 4-feature, 3-class batch of 8 samples and models small enough to train in milliseconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

# Failing memorization runs train to the step budget; keep it small so a "must fail" case costs well under a second.
# No wall-clock setting: verdicts depend on steps only, so no test depends on the machine's speed.
FAST_SETTINGS = {"memorization": {"max-steps": 60}}


def tiny_mlp(in_features: int = 4, hidden: int = 16, classes: int = 3) -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def make_training_spec(**overrides: Any) -> Any:
    """A clean classification spec that passes every check; keyword arguments replace its fields."""
    import torch
    from torch import nn

    from ci_checks import TrainingSpec, synthetic_batch

    fields: dict[str, Any] = {
        "model_factory": tiny_mlp,
        "batch": synthetic_batch((4,), batch_size=8, num_classes=3),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=0.05),
        "settings": {k: dict(v) for k, v in FAST_SETTINGS.items()},
    }
    fields.update(overrides)
    return TrainingSpec(**fields)


def step(*, zero_grad: bool = True, mode: str = "train") -> Callable[..., Any]:
    """A user train_step with the usual shape; the flags switch in the classic bugs."""

    def train_step(model: Any, batch: Any, loss_fn: Any, optimizer: Any) -> Any:
        x, y = batch
        getattr(model, mode)()
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


@pytest.fixture
def make_spec() -> Callable[..., Any]:
    """Build a clean TrainingSpec; override any field: make_spec(optimizer_factory=..., train_step=...)."""
    return make_training_spec


@pytest.fixture
def mlp() -> Callable[..., Any]:
    return tiny_mlp


@pytest.fixture
def make_step() -> Callable[..., Any]:
    return step


SPEC_HEADER = """\
import torch
from torch import nn
from ci_checks import synthetic_batch


def _mlp():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def good():
    return {
        "model_factory": _mlp,
        "batch": synthetic_batch((4,), batch_size=8, num_classes=3),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=0.05),
        "memorization": {"max-steps": 60},
    }

"""


@pytest.fixture
def write_spec(tmp_path: Any) -> Callable[..., str]:
    """Write a spec module (a header with good() plus the given body) into tmp_path; return its path."""

    def write(body: str = "", name: str = "ci_spec.py") -> str:
        path = tmp_path / name
        path.write_text(SPEC_HEADER + textwrap.dedent(body), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """The models here are tiny: on a 2-core runner, intra-op threads cost ten times the arithmetic."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_import_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Loading a spec puts its folder on sys.path and its modules in sys.modules; undo that after each test.

    Otherwise a later test's `from helpers import ...` would get an earlier test's helpers module.
    """
    path = list(sys.path)
    modules = set(sys.modules)
    base = str(tmp_path_factory.getbasetemp())
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if name.startswith("_ci_checks_") or file.startswith(base):
            del sys.modules[name]


# ---------------------------------------------------------------- git repositories


class GitRepo:
    """A folder to run git in, with a fixed identity and neither the user's nor the system's git config."""

    ENV = {
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.com",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "DVC_NO_ANALYTICS": "1",
    }

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = self.root = Path(path)

    @classmethod
    def init(cls, path: str | os.PathLike[str], *, branch: str = "main") -> GitRepo:
        """`git init` a new repository in path (created if missing)."""
        repo = cls(path)
        repo.path.mkdir(parents=True, exist_ok=True)
        repo.git("init", "-q", "-b", branch)
        return repo

    def run(self, *cmd: str) -> str:
        """Run any command here with ENV (and this interpreter's scripts first on PATH); return its stdout."""
        env = {**os.environ, **self.ENV, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
        return subprocess.run(cmd, cwd=self.path, env=env, capture_output=True, text=True, check=True).stdout

    def git(self, *args: str) -> str:
        return self.run("git", *args)

    def write(self, files: Mapping[str, Any]) -> None:
        """Write files by relative path: text as is, None deletes, anything else as JSON."""
        for name, content in files.items():
            path = self.path / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content if isinstance(content, str) else json.dumps(content))

    def commit(self, files: Mapping[str, Any] | None = None, message: str = "change") -> str:
        """Write files, commit everything (an empty commit is fine) and return the new HEAD."""
        self.write(files or {})
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture(scope="session")
def git_repo() -> type[GitRepo]:
    """GitRepo: git_repo.init(path) makes a repository, git_repo(path) runs git in an existing folder."""
    return GitRepo


# ---------------------------------------------------------------- compare's projects (tests/compare, tests/commands)


@pytest.fixture
def compare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The git that compare runs ignores the user's config; GitHub's variables do not leak into the tests."""
    for key, value in GitRepo.ENV.items():
        monkeypatch.setenv(key, value)
    # Running inside GitHub Actions must not change which base the tests resolve, or where output goes.
    for key in ("GITHUB_BASE_REF", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(key, raising=False)


class CompareProject(GitRepo):
    """A git repository that `ci-checks compare` runs on."""

    def compare(self, *args: str) -> tuple[int, dict[str, Any]]:
        """Its exit code and JSON results ({} on exit 2)."""
        from ci_checks.main import main

        out = self.root / "compare.json"
        rc = main(["compare", "--head-dir", str(self.root), "--output", str(out), "--quiet", *args])
        return rc, json.loads(out.read_text()) if out.exists() and rc != 2 else {}


class CompareProjects:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(
        self, base: Mapping[str, Any], head: Mapping[str, Any] | None = None, *, commit_head: bool = False
    ) -> CompareProject:
        """Commit base on main, branch `feature`, then write head (and commit it with commit_head)."""
        p = CompareProject.init(self.path)
        p.commit(base, "base")
        p.git("checkout", "-q", "-b", "feature")
        if head is not None and commit_head:
            p.commit(head)
        elif head is not None:
            p.write(head)
        return p

    def at(self, path: str | os.PathLike[str]) -> CompareProject:
        """A repository made otherwise, e.g. a clone."""
        return CompareProject(path)


@pytest.fixture
def compare_project(tmp_path: Path, compare_env: None) -> CompareProjects:
    """compare_project(base_files, head_files) -> a repository with .compare(*args); .at(path) for a clone."""
    return CompareProjects(tmp_path / "repo")
