"""The base revision's side: its quality policy (read from git) and its model's evaluation (run in a worktree).

The base's code runs as the base wrote it: a git worktree of the base commit in a temporary folder, its own quality
spec, in a child process (`python -m ci_checks.quality.worker`), which hands back per-example results. Its
DVC-tracked model comes from the working tree's DVC cache (else a pull); without it, the base's spec builds the
model from its code. The worktree is removed on every way out, and nothing else is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ci_checks import _git
from ci_checks._errors import UserError, signals_deferred
from ci_checks.quality.evaluate import Evaluation

TIMEOUT_S = 3600.0  # a safety cap on the base's run (a hung DVC remote), never part of a verdict


@dataclass
class BaseSide:
    """What the comparison knows of the base: its name, commit, policy, and evaluation (None: no baseline)."""

    name: str
    sha: str | None
    config: dict[str, Any] | None  # the base's [tool.ci-checks], None when it has no pyproject.toml there
    config_path: str | None  # relative to the repository's top folder
    evaluation: Evaluation | None = None
    note: str | None = None  # why there is no baseline


def open_base(
    ref: str | None,
    *,
    config_path: str | None,
    fetch_depth: int,
    log: Callable[[str], None],
    env: Mapping[str, str] | None = None,
) -> tuple[BaseSide, Any]:
    """Resolve the base revision and read its [tool.ci-checks]; returns the side and the repository."""
    from ci_checks.compare.base import find_repo, resolve_base, short
    from ci_checks.compare.base_policy import read_config
    from ci_checks.compare.trees import GitTree

    cwd = os.path.dirname(os.path.abspath(config_path)) if config_path else os.getcwd()
    repo = find_repo(cwd, hint="without git, run ci-checks quality without --base")
    if repo is None:
        raise UserError(f"{cwd} is not in a git repository, so there is no base revision; run without --base")
    resolved = resolve_base(repo, ref, fetch_depth=fetch_depth, env=env or os.environ, log=log)
    if resolved is None:
        return BaseSide("none", None, None, None, note="the repository has no commits yet"), repo
    name, sha = resolved
    side = BaseSide(short(name, repo.remote), sha, None, None)
    if config_path:
        rel = os.path.relpath(os.path.abspath(config_path), repo.toplevel).replace(os.sep, "/")
        tree = GitTree(repo.toplevel, sha, "", label=f"{side.name} ({sha[:7]})")
        try:
            side.config = read_config(tree, rel, f"{rel} at {side.name} ({sha[:7]})")
        finally:
            tree.close()
        side.config_path = rel if side.config is not None else None
    return side, repo


@contextlib.contextmanager
def base_running(
    side: BaseSide,
    repo: Any,
    *,
    settings: Mapping[str, Any],
    head_dvc_cache: str | None,
    threads: int,
    quiet: bool,
    log: Callable[[str], None],
) -> Iterator[Callable[[], None]]:
    """Start the base's quality spec in a worktree of the base commit, in a child process, and yield finish():
    it waits for the child and sets side.evaluation, or side.note. The caller evaluates this change's model
    meanwhile (the two use a core each). The child is stopped and the worktree removed on every way out."""
    from ci_checks.quality.evaluate import load
    from ci_checks.spec import anchor_spec_ref

    spec = settings.get("spec")
    if side.sha is None or side.config_path is None or not spec:
        side.note = f"{side.name} has no quality spec ([tool.ci-checks.quality] spec) yet: nothing to compare with"
        yield lambda: None
        return
    temp = tempfile.mkdtemp(prefix="ci-checks-quality-")
    tree = os.path.join(temp, "base")
    out, errors = os.path.join(temp, "base.npz"), os.path.join(temp, "stderr.txt")
    proc: subprocess.Popen[bytes] | None = None
    try:
        log(f"checking out {side.name} ({side.sha[:7]}) into a temporary worktree")
        _git.run(["worktree", "add", "--detach", "--force", tree, side.sha], repo.toplevel)
        project = os.path.join(tree, os.path.dirname(side.config_path))
        ref = anchor_spec_ref(str(spec), project)
        suites = os.path.join(project, str(settings.get("suites-dir") or "golden"))
        argv = [sys.executable, "-m", "ci_checks.quality.worker", "--spec", ref, "--out", out]
        argv += ["--suites-dir", suites, "--threads", str(threads)]
        env = {**os.environ}
        if head_dvc_cache:
            from ci_checks.quality.artifacts import CACHE_ENV

            env[CACHE_ENV] = head_dvc_cache
        log(f"running {side.name}'s quality spec {spec} (in the background)")
        with open(errors, "wb") as err:
            proc = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=err)

        def finish() -> None:
            assert proc is not None
            try:
                proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                side.note = f"{side.name}'s quality suites did not finish within {TIMEOUT_S:g} s"
                return
            with open(errors, encoding="utf-8", errors="replace") as fh:
                lines = [ln for ln in fh.read().splitlines() if ln.strip()]
            if not quiet:
                for line in lines[-20:]:
                    log(f"[{side.name}] {line}")
            if proc.returncode != 0 or not os.path.exists(out):
                why = lines[-1][:300] if lines else f"exit code {proc.returncode}"
                side.note = f"{side.name}'s quality spec could not run ({why})"
                return
            side.evaluation = load(out)

        yield finish
    finally:
        with signals_deferred():
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            _git.remove_worktree(repo.toplevel, tree)
            shutil.rmtree(temp, ignore_errors=True)


def dvc_cache(project: str) -> str | None:
    """The working tree's DVC cache folder, when it has one (the default .dvc/cache)."""
    folder = project
    while True:
        cache = os.path.join(folder, ".dvc", "cache")
        if os.path.isdir(cache):
            return cache
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
