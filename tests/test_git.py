"""ci_checks/_git.py, the one place that runs git: a missing git or a failing command is one line and exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ci_checks import _git
from ci_checks._errors import UserError
from ci_checks.hooks import dvc_outputs
from ci_checks.main import main


@pytest.fixture
def no_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.usefixtures("no_git")
def test_missing_git_is_a_user_error_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^git is not installed or not on PATH, so `git status` could not run; "):
        _git.run(["status"], str(tmp_path), check=False)  # even when the caller inspects the result
    with pytest.raises(UserError, match=r"`git cat-file --batch` could not run; install git$"):
        _git.popen(["cat-file", "--batch"], str(tmp_path))


@pytest.mark.usefixtures("no_git")
@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["compare", "--head-dir", "{tmp}"], id="compare"),
        pytest.param(["rerun", "--ref", "v1", "--config", "{tmp}/pyproject.toml"], id="rerun"),
    ],
)
def test_missing_git_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ci-checks: error: git is not installed or not on PATH, so `git rev-parse")
    assert err.count("\n") == 1
    assert ("--base-metrics-json" in err) == (argv[0] == "compare")  # compare can do without git


@pytest.mark.usefixtures("no_git")
def test_missing_git_in_a_hook(capsys: pytest.CaptureFixture[str]) -> None:
    assert dvc_outputs.main([]) == 2
    err = capsys.readouterr().err
    assert "git is not installed or not on PATH" in err and err.count("\n") == 1


def test_a_failing_command_names_itself_and_gits_reason(tmp_path: Path, git_repo: Any) -> None:
    repo = git_repo.init(tmp_path / "repo")
    with pytest.raises(UserError) as raised:
        _git.run(["rev-parse", "--verify", "no such ref"], str(repo.root), hint="fetch it first")
    message = str(raised.value)
    assert message.startswith(f"`git rev-parse --verify 'no such ref'` failed in {repo.root}: fatal: ")
    assert message.endswith("; fetch it first") and "\n" not in message
    out = _git.run(["rev-parse", "--verify", "no such ref"], str(repo.root), check=False)
    assert out.returncode != 0 and _git.last_line(out).startswith("fatal: ")


def test_a_failing_command_in_a_hook_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository
    assert dvc_outputs.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ci-checks: error: `git rev-parse --show-toplevel` failed: fatal: not a git repository")
    assert err.endswith("; run the hook inside a git repository\n") and err.count("\n") == 1


def test_git_never_prompts(tmp_path: Path, git_repo: Any) -> None:
    repo = git_repo.init(tmp_path / "repo")
    env = _git.output(["-c", "alias.env=!env", "env"], str(repo.root))
    assert "GIT_TERMINAL_PROMPT=0" in env.splitlines()


def test_queries(tmp_path: Path, git_repo: Any) -> None:
    repo = git_repo.init(tmp_path / "repo")
    assert _git.rev_parse(str(repo.root), "HEAD") is None  # no commits yet
    first = repo.commit({"sub/a.txt": "a"}, "first")
    repo.git("checkout", "-q", "-b", "feature")
    second = repo.commit({"sub/b.txt": "b"}, "second")
    root = str(repo.root)
    assert _git.rev_parse(root, "main") == first and _git.rev_parse(root, "feature") == second
    assert _git.merge_base(root, "main", "feature") == first and _git.merge_base(root, "main", "nope") is None
    assert _git.toplevel(str(repo.root / "sub")) == root
    assert _git.toplevel_and_prefix(str(repo.root / "sub")) == (root, "sub/")
    assert _git.toplevel_and_prefix(str(tmp_path)) is None
    assert _git.ls_tree(root, second, "sub") == ["sub/a.txt", "sub/b.txt"]
    assert not _git.is_shallow(root) and _git.remotes(root) == []
