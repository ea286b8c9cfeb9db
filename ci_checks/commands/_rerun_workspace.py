"""rerun's workspaces: owned by the kit, locked while in use, removed on every way out.

Each replay gets `<workdir>/<run>.<id>/` (a git worktree of the current code), its state file, its lock and its
checkpoint folder. The kit writes only its own entries in the workdir and removes only what it made.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from typing import Any

from ci_checks import _git, _io
from ci_checks._errors import UserError, signals_deferred

OWNED = ".ci-checks-workdir"  # in a workdir the kit created: which folders it made, so it can remove them again
STATE = ".json"  # <workspace>.json: the run, its ref, HEAD and status (running, timed-out, done)
LOCK = ".lock"  # <workspace>.lock: held (flock) by the process that uses the workspace


class Workdir:
    """The folder the workspaces live in. The kit writes only its own entries there and removes only what it made:
    a workdir it created (and the folders above it that it created) goes once no workspace is left in it.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def ensure(self) -> None:
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"rerun workdir {self.path} is not a folder; pass another --workdir")
        missing: list[str] = []
        folder = self.path
        while not os.path.lexists(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        try:
            for made in reversed(missing):
                os.mkdir(made)
        except OSError as e:
            raise UserError(
                f"cannot create the rerun workdir {self.path} ({e.strerror}); pass another --workdir"
            ) from None
        if missing:  # the kit's own folder: keep its workspaces out of the user's `git status`
            _io.write_text(os.path.join(self.path, ".gitignore"), "*\n")
            _io.write_text(
                os.path.join(self.path, OWNED),
                json.dumps({"created": [os.path.relpath(m, self.path) for m in missing]}) + "\n",
            )

    def entries(self, name: str) -> list[str]:
        """The workspaces of one run found here (any process's), oldest first: paths without suffix."""
        prefix = f"{name}."
        try:
            found = [f[: -len(STATE)] for f in os.listdir(self.path) if f.startswith(prefix) and f.endswith(STATE)]
        except OSError:
            return []
        paths = [os.path.join(self.path, f) for f in found if f[len(prefix) :].isalnum()]
        return sorted(paths, key=lambda p: _mtime(p + STATE))

    def tidy(self) -> None:
        """Remove the workdir (and the folders above it the kit made) when the kit made it and it holds nothing else."""
        owned = os.path.join(self.path, OWNED)
        try:
            with open(owned, encoding="utf-8") as fh:
                created = [os.path.normpath(os.path.join(self.path, c)) for c in json.load(fh).get("created", [])]
            others = set(os.listdir(self.path)) - {OWNED, ".gitignore"}
        except (OSError, ValueError, AttributeError):
            return
        if others:
            return
        for name in (".gitignore", OWNED):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.path, name))
        for folder in sorted(created, key=len, reverse=True):
            try:
                os.rmdir(folder)
            except OSError:
                return  # not empty: something else lives there now


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


class Lock:
    """An exclusive lock on a workspace's lock file (flock): held while a process uses the workspace, released when
    it ends however it ends (SIGKILL included). Without fcntl (Windows) every lock is granted."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Workspace:
    """One replay's worktree (`<workdir>/<run>.<id>/`), its state file and its lock."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.path = base
        self.lock = Lock(base + LOCK)

    @property
    def checkpoints(self) -> str:
        return self.base + ".checkpoints"

    def state(self) -> dict[str, Any]:
        try:
            with open(self.base + STATE, encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write_state(self, **state: Any) -> None:
        _io.write_text(self.base + STATE, json.dumps(state) + "\n")

    def remove(self, repo: Any) -> None:
        """Remove the worktree, its checkpoints, state and lock; SIGINT/SIGTERM wait until it is done."""
        with signals_deferred():
            _git.remove_worktree(repo.toplevel, self.path)
            shutil.rmtree(self.checkpoints, ignore_errors=True)
            for suffix in (STATE, LOCK):
                with contextlib.suppress(OSError):
                    os.remove(self.base + suffix)
            self.lock.release()


def claim(repo: Any, workdir: Workdir, safe: str, sha: str, head: str | None, resume: bool) -> tuple[Workspace, bool]:
    """A workspace for this replay, locked: with resume, the newest unused one of an earlier replay of the same ref
    and code; else a new one. Earlier workspaces of this run that no process holds are removed (they are the kit's);
    one another process is using is left alone, so concurrent replays never touch each other's files."""
    reused: Workspace | None = None
    for base in reversed(workdir.entries(safe)):
        old = Workspace(base)
        if not old.lock.acquire():
            continue  # another replay is using it
        state = old.state()
        if (
            resume
            and reused is None
            and state.get("sha") == sha
            and state.get("head") == head
            and state.get("status") != "done"
            and os.path.isdir(old.path)
        ):
            reused = old
            continue
        old.remove(repo)
    if reused is not None:
        return reused, True
    ws = Workspace(os.path.join(workdir.path, f"{safe}.{secrets.token_hex(4)}"))
    if not ws.lock.acquire():  # pragma: no cover - a fresh random name
        raise UserError(f"cannot lock the rerun workspace {ws.base}{LOCK}; pass another --workdir")
    return ws, False


def build(repo: Any, ws: Workspace, sha: str, workdir: Workdir, log: Callable[[str], None]) -> str:
    """A worktree of HEAD plus the working tree's changes (staged and not, new files, deletions, symlinks), then the
    ref's params files, dvc.lock and .dvc files. Returns the project folder inside it."""
    from ci_checks.compare.files import read_dvc_yaml
    from ci_checks.compare.trees import GitTree

    _git.run(["worktree", "add", "--detach", "--force", ws.path, "HEAD"], repo.toplevel)
    present, deleted = _git.changed_files(repo.toplevel)
    inside = os.path.relpath(workdir.path, repo.toplevel).replace(os.sep, "/") + "/"
    for name in present:
        if (name + "/").startswith(inside):
            continue  # the workspaces themselves, when the workdir is not git-ignored
        src, dst = os.path.join(repo.toplevel, name), os.path.join(ws.path, name)
        if os.path.isdir(src) and not os.path.islink(src):
            continue  # a submodule: checked out by the worktree at its recorded commit
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst) or os.path.islink(dst):
            os.remove(dst)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)  # as git records it: the link, dangling or to a folder
        else:
            shutil.copy2(src, dst)
    for name in deleted:
        dst = os.path.join(ws.path, name)
        if os.path.lexists(dst) and not os.path.isdir(dst):
            os.remove(dst)
    ws_project = os.path.join(ws.path, repo.prefix)
    tree = GitTree(repo.toplevel, sha, repo.prefix, label=sha[:7])
    try:
        outputs = read_dvc_yaml(tree)
        pinned = {"dvc.lock", *(outputs.params if outputs else []), "params.yaml"}
        pinned.update(f for f in tree.files if f.endswith(".dvc"))
        for name in sorted(pinned):
            data = tree.read(name)
            if data is not None:
                target = os.path.join(ws_project, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                _io.write_bytes(target, data)
    finally:
        tree.close()
    log(f"workspace {ws.path}: current code, params/lock/data of {sha[:7]}")
    return ws_project
