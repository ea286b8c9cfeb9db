"""The base side of the comparison: a git revision (the merge-base with the default branch, fetched in shallow
clones when needed), or the compare results saved by a run on main."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_checks import _git
from ci_checks._errors import UserError
from ci_checks.compare.files import Metric, finite_number
from ci_checks.compare.trees import EmptyTree, GitTree, Tree
from ci_checks.results import Kind

# For a missing git binary: compare can still run on saved results.
NO_GIT = "without git, pass --base-metrics-json FILE (compare results saved on main)"


@dataclass
class Repo:
    toplevel: str
    prefix: str  # the compared folder relative to the top level, with a trailing slash, or ""
    head_sha: str | None
    remote: str | None


def find_repo(path: str, *, hint: str | None = None) -> Repo | None:
    """The repository path is in, or None; hint: how to do without git, for the message when git is missing."""
    found = _git.toplevel_and_prefix(path, hint=hint)
    if found is None:
        return None
    toplevel, prefix = found
    remotes = _git.remotes(toplevel)
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    return Repo(toplevel, prefix, _git.rev_parse(toplevel, "HEAD"), remote)


def short(ref: str, remote: str | None) -> str:
    """A ref without its remote's prefix: origin/main -> main."""
    return ref[len(remote) + 1 :] if remote and ref.startswith(f"{remote}/") else ref


def _fetch_hint(remote: str | None, branch: str) -> str:
    return f"actions/checkout with fetch-depth: 0, or git fetch {remote or 'origin'} {branch} --depth=50"


def _fetch(repo: Repo, refspecs: Sequence[str], depth_arg: str, log: Callable[[str], None]) -> bool:
    assert repo.remote is not None
    out = _git.run(["fetch", "--no-tags", "--quiet", depth_arg, repo.remote, *refspecs], repo.toplevel, check=False)
    if out.returncode == 0:
        log(f"fetched {' '.join(refspecs)} from {repo.remote} ({depth_arg})")
        return True
    reason = (out.stderr.strip().splitlines() or ["no output"])[-1]
    log(f"git fetch {depth_arg} {repo.remote} {' '.join(refspecs)} failed: {reason}")
    return False


def _default_branch(repo: Repo, env: Mapping[str, str]) -> list[str]:
    """The base branch candidates: the PR's base (GITHUB_BASE_REF), the remote's HEAD, else main then master."""
    if env.get("GITHUB_BASE_REF"):
        return [env["GITHUB_BASE_REF"]]
    if repo.remote:
        out = _git.run(["symbolic-ref", "--quiet", f"refs/remotes/{repo.remote}/HEAD"], repo.toplevel, check=False)
        target = out.stdout.strip()
        if out.returncode == 0 and target.startswith(f"refs/remotes/{repo.remote}/"):
            return [target[len(f"refs/remotes/{repo.remote}/") :]]
    return ["main", "master"]


def _given_ref(repo: Repo, ref: str, fetch_depth: int, log: Callable[[str], None]) -> str:
    """The commit of a ref the user named, fetched when missing and fetching is allowed."""
    rev = _git.rev_parse
    sha = rev(repo.toplevel, ref) or (rev(repo.toplevel, f"{repo.remote}/{ref}") if repo.remote else None)
    branch = short(ref, repo.remote)
    if sha is None and repo.remote is not None and fetch_depth > 0:
        depth = f"--depth={fetch_depth}"
        if _fetch(repo, [f"+refs/heads/{branch}:refs/remotes/{repo.remote}/{branch}"], depth, log):
            sha = rev(repo.toplevel, f"{repo.remote}/{branch}")
        elif _fetch(repo, [f"+refs/tags/{branch}:refs/tags/{branch}"], depth, log):
            sha = rev(repo.toplevel, branch)
        elif re.fullmatch(r"[0-9a-f]{40}", ref) and _fetch(repo, [ref], depth, log):
            sha = rev(repo.toplevel, ref)
    if sha is None:
        raise UserError(
            f"base ref '{ref}' is not in this clone (a shallow or single-branch checkout?); fetch it: "
            + _fetch_hint(repo.remote, branch)
        )
    return sha


def resolve_base(
    repo: Repo, ref: str | None, *, fetch_depth: int, env: Mapping[str, str], log: Callable[[str], None]
) -> tuple[str, str] | None:
    """The base (ref, sha): the given ref itself, or the merge-base of HEAD with the default branch.

    In shallow clones fetch what is missing when a remote exists and fetch-depth > 0; otherwise fail with the
    fetch to add. None when there is nothing to compare against at all (a repository without commits).
    """
    if ref is not None:
        return ref, _given_ref(repo, ref, fetch_depth, log)
    can_fetch = repo.remote is not None and fetch_depth > 0
    candidates = _default_branch(repo, env)
    found: tuple[str, str] | None = None
    for branch in candidates:
        for name in ([f"{repo.remote}/{branch}"] if repo.remote else []) + [branch]:
            sha = _git.rev_parse(repo.toplevel, name)
            if sha:
                found = (name, sha)
                break
        if found:
            break
    if found is None and can_fetch:
        assert repo.remote is not None
        for branch in candidates:
            if _fetch(
                repo, [f"+refs/heads/{branch}:refs/remotes/{repo.remote}/{branch}"], f"--depth={fetch_depth}", log
            ):
                sha = _git.rev_parse(repo.toplevel, f"{repo.remote}/{branch}")
                if sha:
                    found = (f"{repo.remote}/{branch}", sha)
                    break
    if found is None:
        if repo.head_sha is None:
            return None
        raise UserError(
            f"no base branch: none of {', '.join(candidates)} is in this clone"
            + (f" or on {repo.remote}" if repo.remote else "")
            + "; pass --base REF, or fetch it: "
            + _fetch_hint(repo.remote, candidates[0])
        )
    name, sha = found
    if repo.head_sha is None:
        return name, sha
    merge_base = _git.merge_base(repo.toplevel, "HEAD", sha)
    shallow = _git.is_shallow(repo.toplevel)
    branch = short(name, repo.remote)
    if merge_base is None and shallow and can_fetch:
        assert repo.remote is not None
        spec = f"+refs/heads/{branch}:refs/remotes/{repo.remote}/{branch}"
        for deepen in (fetch_depth, fetch_depth * 10):
            if not _fetch(repo, [repo.head_sha, spec], f"--deepen={deepen}", log):
                _fetch(repo, [], f"--deepen={deepen}", log)
            sha = _git.rev_parse(repo.toplevel, name) or sha
            merge_base = _git.merge_base(repo.toplevel, "HEAD", sha)
            if merge_base:
                break
    if merge_base is None:
        if shallow:
            raise UserError(
                f"no merge-base of HEAD and {name} in this shallow clone; fetch more history: "
                f"actions/checkout with fetch-depth: 0, or git fetch --deepen=200 "
                f"{repo.remote or 'origin'} {branch}"
            )
        raise UserError(f"HEAD and {name} share no history; pass the base revision with --base REF")
    return name, merge_base


# ---------------------------------------------------------------- the base side, from git or from saved results


@dataclass
class Base:
    """What the comparison compares against."""

    tree: Tree = field(default_factory=EmptyTree)
    name: str = "main"  # how messages name it
    subject: dict[str, Any] = field(default_factory=lambda: {"ref": "none", "sha": None, "source": "none"})
    saved_metrics: dict[str, Metric] = field(default_factory=dict)  # from --base-metrics-json
    saved_curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # by check name
    saved_policy: dict[str, Any] | None = None  # the policy the saved results were judged by (subject.policy)


def open_base(
    head_dir: str,
    repo: Repo | None,
    ref: str | None,
    *,
    fetch_depth: int,
    saved_results: str | None,
    env: Mapping[str, str],
    log: Callable[[str], None],
) -> Base:
    """The saved results when given, else the base revision of the repository; its tree must be closed."""
    if saved_results is not None:
        metrics, curves, sha, policy = _results_base(saved_results)
        subject = {"ref": saved_results, "sha": sha, "source": "results-json"}
        return Base(subject=subject, saved_metrics=metrics, saved_curves=curves, saved_policy=policy)
    if repo is None:
        raise UserError(
            f"{head_dir} is not in a git repository, so there is no base revision; run compare in a git "
            "checkout, or pass --base-metrics-json FILE (compare results saved on main)"
        )
    resolved = resolve_base(repo, ref, fetch_depth=fetch_depth, env=env, log=log)
    if resolved is None:
        return Base()
    ref, sha = resolved
    name = short(ref, repo.remote)
    tree = GitTree(repo.toplevel, sha, repo.prefix, label=f"{name} ({sha[:7]})")
    return Base(tree=tree, name=name, subject={"ref": ref, "sha": sha, "source": "git"})


def _results_base(
    path: str,
) -> tuple[dict[str, Metric], dict[str, dict[str, list[float]]], str | None, dict[str, Any] | None]:
    """Base metrics, curves, commit and policy from a compare results JSON written on main (its head values)."""
    from ci_checks.results import load_report

    doc = load_report(path)
    if doc.command != "compare":
        raise UserError(
            f"{path}: these are '{doc.command}' results, not compare results; write them on main with "
            "ci-checks compare --format json --output FILE"
        )
    metrics: dict[str, Metric] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    for check in doc.checks:
        kind = check.kind
        if kind is Kind.METRIC:
            samples = check.figures.get("head_samples") or []
            if samples and all(finite_number(s) for s in samples):
                file = check.check.partition(":")[0] or check.check
                metrics[check.check] = Metric(check.check, file, [float(s) for s in samples])
        elif kind is Kind.CURVE:
            curves[check.check] = {k[5:]: v for k, v in check.series.items() if k.startswith("head:")}
    head = doc.subject.get("head") if isinstance(doc.subject.get("head"), Mapping) else {}
    policy = doc.subject.get("policy")
    return metrics, curves, (head or {}).get("sha"), dict(policy) if isinstance(policy, Mapping) else None
