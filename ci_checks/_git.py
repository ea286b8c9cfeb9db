"""The one place that runs git: one wrapper, one error policy, and the small queries the commands share.

A missing git binary, or a command that fails when the caller did not ask to inspect the result (check=False),
becomes a UserError (exit 2) with one line that names the command. Git never prompts: a fetch that needs
credentials fails instead of hanging a CI job.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence

from ci_checks._errors import UserError

ENV = {"GIT_TERMINAL_PROMPT": "0"}


def _env() -> dict[str, str]:
    return {**os.environ, **ENV}


def _missing(args: Sequence[str], hint: str | None) -> UserError:
    return UserError(
        f"git is not installed or not on PATH, so `{command(args)}` could not run; install git"
        + (f"; {hint}" if hint else "")
    )


def command(args: Sequence[str]) -> str:
    """The command line as messages show it."""
    return shlex.join(["git", *args])


def last_line(out: subprocess.CompletedProcess[str]) -> str:
    """The last line git wrote on stderr, else its exit code: why it failed, in one line."""
    lines = [line.strip() for line in out.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {out.returncode}"


def run(
    args: Sequence[str], cwd: str | None, *, check: bool = True, hint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `git ARGS` in cwd and capture its output as text.

    check=True: a failure raises UserError naming the command, git's last line of stderr and the hint (how to
    fix it). check=False: the caller inspects returncode and stderr itself. A missing git binary raises either way.
    """
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            env=_env(),
            check=False,
        )
    except FileNotFoundError:
        raise _missing(args, hint) from None
    if check and out.returncode != 0:
        where = f" in {cwd}" if cwd else ""
        raise UserError(f"`{command(args)}` failed{where}: {last_line(out)}" + (f"; {hint}" if hint else ""))
    return out


def output(args: Sequence[str], cwd: str | None, *, hint: str | None = None) -> str:
    """The standard output of a git command that must succeed."""
    return run(args, cwd, hint=hint).stdout


def popen(args: Sequence[str], cwd: str) -> subprocess.Popen[bytes]:
    """A long-lived git process with binary pipes on stdin and stdout (e.g. `cat-file --batch`)."""
    try:
        return subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
    except FileNotFoundError:
        raise _missing(args, None) from None


# ---------------------------------------------------------------- queries


def rev_parse(cwd: str, ref: str, *, hint: str | None = None) -> str | None:
    """The commit a ref names, or None when there is no such commit."""
    out = run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd, check=False, hint=hint)
    return out.stdout.strip() or None if out.returncode == 0 else None


def toplevel(cwd: str | None, *, hint: str | None = None) -> str:
    """The top folder of the work tree cwd is in; UserError outside a git repository."""
    return output(["rev-parse", "--show-toplevel"], cwd, hint=hint).strip()


def toplevel_and_prefix(cwd: str, *, hint: str | None = None) -> tuple[str, str] | None:
    """The top folder and cwd relative to it (with a trailing slash, or ""); None outside a git repository."""
    out = run(["rev-parse", "--show-toplevel", "--show-prefix"], cwd, check=False, hint=hint)
    if out.returncode != 0:
        return None
    lines = out.stdout.splitlines()
    return lines[0], lines[1] if len(lines) > 1 else ""


def remotes(cwd: str, *, hint: str | None = None) -> list[str]:
    return run(["remote"], cwd, check=False, hint=hint).stdout.split()


def merge_base(cwd: str, a: str, b: str, *, hint: str | None = None) -> str | None:
    out = run(["merge-base", a, b], cwd, check=False, hint=hint)
    return out.stdout.strip() or None if out.returncode == 0 else None


def is_shallow(cwd: str, *, hint: str | None = None) -> bool:
    return run(["rev-parse", "--is-shallow-repository"], cwd, check=False, hint=hint).stdout.strip() == "true"


def ls_tree(cwd: str, rev: str, path: str) -> list[str]:
    """Every file of a revision under path (relative to the top folder); [] when git cannot list it."""
    out = run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", rev, "--", path], cwd, check=False)
    return [n for n in out.stdout.split("\0") if n] if out.returncode == 0 else []


# ---------------------------------------------------------------- worktrees (rerun's workspaces)


def worktrees(cwd: str) -> list[str]:
    """The paths of every worktree registered in the repository, the main one first."""
    out = run(["worktree", "list", "--porcelain"], cwd, check=False)
    return [line[len("worktree ") :] for line in out.stdout.splitlines() if line.startswith("worktree ")]


def remove_worktree(cwd: str, path: str) -> None:
    """Unregister and delete a worktree, whatever state it was left in.

    A worktree whose `git worktree add` was killed stays registered and locked ("initializing"), which
    `worktree prune` respects: it is unlocked first. Nothing but the worktree and its registration is touched.
    """
    import shutil

    run(["worktree", "unlock", path], cwd, check=False)
    run(["worktree", "remove", "--force", "--force", path], cwd, check=False)
    shutil.rmtree(path, ignore_errors=True)
    run(["worktree", "prune"], cwd, check=False)


def changed_files(cwd: str) -> tuple[list[str], list[str]]:
    """What the working tree changes against HEAD: (files to take from the working tree, files it deleted).

    Staged and unstaged edits, staged new files, deletions and untracked files that are not ignored; paths are
    relative to the top folder, with '/'.
    """
    tracked = output(["diff", "--no-renames", "--name-only", "-z", "HEAD", "--"], cwd).split("\0")
    untracked = output(["ls-files", "--others", "--exclude-standard", "-z"], cwd).split("\0")
    present: list[str] = []
    deleted: list[str] = []
    for name in dict.fromkeys(filter(None, tracked + untracked)):
        (present if os.path.lexists(os.path.join(cwd, name)) else deleted).append(name)
    return present, deleted
