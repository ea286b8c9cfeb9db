"""A DVC-tracked model artifact that is missing from the checkout: checked out from the DVC cache, else pulled."""

from __future__ import annotations

import os
import sys

# Set by the base-revision run: the working tree's DVC cache, so the base's artifact comes from the local cache.
CACHE_ENV = "CI_CHECKS_QUALITY_DVC_CACHE"
TIMEOUT_S = 600.0  # a safety cap for a remote that never answers, not a verdict


def _project(path: str) -> str | None:
    """The DVC project (the folder holding .dvc/) that path is in, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.isdir(os.path.join(folder, ".dvc")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _tracked(project: str, path: str) -> bool:
    """Whether DVC tracks path: a PATH.dvc file, or an output of a stage in dvc.lock."""
    if os.path.exists(path + ".dvc"):
        return True
    lock = os.path.join(project, "dvc.lock")
    rel = os.path.relpath(os.path.abspath(path), project).replace(os.sep, "/")
    try:
        with open(lock, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return False
    return f"path: {rel}\n" in text or f"path: {rel}\r\n" in text


def _has_files(folder: str) -> bool:
    try:
        return any(os.scandir(folder))
    except OSError:
        return False


def _has_remote(project: str) -> bool:
    """Whether the project's DVC config names a remote (else `dvc pull` has nowhere to pull from)."""
    for name in ("config", "config.local"):
        try:
            with open(os.path.join(project, ".dvc", name), encoding="utf-8") as fh:
                if "remote" in fh.read():
                    return True
        except OSError:
            continue
    return False


def fetch_dvc_artifact(path: str, *, quiet: bool = False) -> bool:
    """Materialize a missing DVC-tracked file: `dvc checkout` (from the cache), else `dvc pull`; True when it is
    there afterwards. Not tracked, DVC not installed or both failing: False, with a line on stderr."""
    from ci_checks import _dvc

    project = _project(path)
    if project is None or not _tracked(project, path) or _dvc.dvc_command() is None:
        return False
    rel = os.path.relpath(os.path.abspath(path), project)
    cache = os.environ.get(CACHE_ENV)
    if cache and os.path.isdir(cache):
        # Only in the kit's own worktree of the base revision: its local config is the kit's to write.
        _dvc.run(["config", "--local", "cache.dir", cache], project, timeout=TIMEOUT_S)
    attempts = []
    if cache or _has_files(os.path.join(project, ".dvc", "cache")):
        attempts.append(["checkout", rel])
    if _has_remote(project):
        attempts.append(["pull", rel])
    for args in attempts:
        out = _dvc.run(args, project, timeout=TIMEOUT_S)
        if out.returncode == 0 and os.path.exists(path):
            return True
        if not quiet:
            print(
                f"ci-checks quality: `dvc {' '.join(args)}` did not restore {rel}: {_dvc.last_line(out)}",
                file=sys.stderr,
            )
    return os.path.exists(path)
