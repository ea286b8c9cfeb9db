"""compare: the working tree's metrics against a base revision, with a per-metric policy and noise-aware tests.

Verdicts per metric: improved, unchanged, within-noise, regressed, missing (on the head side), new (head only),
invalid (NaN, a string, a nested structure). With at least two samples per side (seeds) the verdict comes from
Welch's t-test or a bootstrap interval, and a regression needs both significance and a change beyond the
tolerance; with single values the tolerance decides alone.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import math
import os
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ci_checks._errors import UserError

if TYPE_CHECKING:
    from ci_checks.compare.files import CurveSpec, FileSpec, Metric, Tree
    from ci_checks.results import CheckResult, Finding, Location, Report

HELP = "compare the working tree's metrics with the base branch (per-metric policy, seed-aware tests)"

FAIL_ON = ("regressed", "missing", "any", "never")
DIRECTIONS = ("higher", "lower")
TESTS = ("welch", "bootstrap")
VERDICTS = ("improved", "unchanged", "within-noise", "regressed", "missing", "new", "invalid")

# [tool.ci-checks.compare] with its defaults (README: configuration reference).
SETTINGS: dict[str, Any] = {
    "files": [],
    "curves": [],
    "fail-on": "regressed",
    "steps-ratio": 2.0,
    "base": None,
    "fetch-depth": 50,
    "dvc": True,
    "params": ["params.yaml"],
}
# [tool.ci-checks.metrics."NAME-OR-GLOB"] with its defaults.
POLICY: dict[str, Any] = {
    "direction": None,  # guessed from the name
    "abs-tol": None,
    "rel-tol": None,  # 0.01 when neither tolerance is set
    "required": True,
    "test": "welch",
    "alpha": 0.05,
}
DEFAULT_REL_TOL = 0.01
BOOTSTRAP_RESAMPLES = 2000
Curve = tuple[str, dict[str, list[float]]]  # x column name, columns by name
LOWER_IS_BETTER = re.compile(r"loss|error|perplexity|latency|(?:^|[^a-z])(?:mse|mae|rmse|time|ppl|err)(?:$|[^a-z])")


# ---------------------------------------------------------------- configuration


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _closest(key: str, valid: Sequence[str]) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"did you mean '{match[0]}'?" if match else f"valid keys: {', '.join(sorted(valid))}"


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where} must be a string or a list of strings, got {value!r}")
    return list(value)


def validate_compare(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate [tool.ci-checks.compare]; return it with defaults filled in."""
    out = dict(SETTINGS)
    for key, value in table.items():
        if key not in SETTINGS:
            raise UserError(f"{where}: unknown key '{key}'; {_closest(key, list(SETTINGS))}")
        if key == "files":
            out[key] = [_file_entry(v, f"{where}.files") for v in _list(value, f"{where}: 'files'")]
        elif key == "curves":
            out[key] = [_curve_entry(v, f"{where}.curves") for v in _list(value, f"{where}: 'curves'")]
        elif key == "fail-on":
            if value not in FAIL_ON:
                raise UserError(f"{where}: fail-on must be one of {', '.join(FAIL_ON)}, got {value!r}")
            out[key] = value
        elif key == "steps-ratio":
            if not _number(value) or value <= 0:
                raise UserError(f"{where}: steps-ratio must be a positive number, got {value!r}")
            out[key] = float(value)
        elif key == "base":
            if value is not None and (not isinstance(value, str) or not value):
                raise UserError(f'{where}: base must be a git revision such as "origin/main", got {value!r}')
            out[key] = value
        elif key == "fetch-depth":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserError(f"{where}: fetch-depth must be a whole number >= 0 (0: never fetch), got {value!r}")
            out[key] = value
        elif key == "dvc":
            if not isinstance(value, bool):
                raise UserError(f"{where}: dvc must be true or false, got {value!r}")
            out[key] = value
        elif key == "params":
            out[key] = _str_list(value, f"{where}: 'params'")
    return out


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise UserError(f"{where} must be a list, got {value!r}")
    return value


def _file_entry(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"path": value, "columns": [], "rows": "last"}
    if not isinstance(value, Mapping) or not isinstance(value.get("path"), str):
        raise UserError(
            f"{where}: each entry is a path or glob, or a table like "
            '{{path = "results.csv", columns = ["acc"], rows = "last"}}; got {value!r}'
        )
    for key in value:
        if key not in ("path", "columns", "rows"):
            raise UserError(f"{where}: unknown key '{key}'; {_closest(key, ['path', 'columns', 'rows'])}")
    rows = value.get("rows", "last")
    if rows not in ("last", "all"):
        raise UserError(f'{where}: rows must be "last" (the last row) or "all" (one sample per row), got {rows!r}')
    return {"path": value["path"], "columns": _str_list(value.get("columns", []), f"{where}: 'columns'"), "rows": rows}


def _curve_entry(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"path": value, "x": None, "y": []}
    if not isinstance(value, Mapping) or not isinstance(value.get("path"), str):
        raise UserError(
            f'{where}: each entry is a path, or a table like {{path = "plots/loss.csv", x = "step", '
            f'y = ["loss"]}}; got {value!r}'
        )
    for key in value:
        if key not in ("path", "x", "y"):
            raise UserError(f"{where}: unknown key '{key}'; {_closest(key, ['path', 'x', 'y'])}")
    x = value.get("x")
    if x is not None and not isinstance(x, str):
        raise UserError(f"{where}: x must be a column name, got {x!r}")
    return {"path": value["path"], "x": x, "y": _str_list(value.get("y", []), f"{where}: 'y'")}


def validate_metrics(table: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Validate [tool.ci-checks.metrics]: one table per metric name or glob."""
    out: dict[str, dict[str, Any]] = {}
    for name, policy in table.items():
        here = f'{where}."{name}"'
        if not isinstance(policy, Mapping):
            raise UserError(
                f'{here}: must be a table, e.g. [tool.ci-checks.metrics."{name}"] with ' 'direction = "higher"'
            )
        checked: dict[str, Any] = {}
        for key, value in policy.items():
            if key not in POLICY:
                raise UserError(f"{here}: unknown key '{key}'; {_closest(key, list(POLICY))}")
            if key == "direction" and value not in DIRECTIONS:
                raise UserError(f'{here}: direction must be "higher" or "lower" (which is better), got {value!r}')
            if key in ("abs-tol", "rel-tol") and (not _number(value) or value < 0):
                raise UserError(f"{here}: {key} must be a number >= 0, got {value!r}")
            if key == "required" and not isinstance(value, bool):
                raise UserError(f"{here}: required must be true or false, got {value!r}")
            if key == "test" and value not in TESTS:
                raise UserError(f'{here}: test must be "welch" or "bootstrap", got {value!r}')
            if key == "alpha" and (not _number(value) or not 0 < value < 0.5):
                raise UserError(f"{here}: alpha must be a number between 0 and 0.5, got {value!r}")
            checked[key] = float(value) if key in ("abs-tol", "rel-tol", "alpha") else value
        out[str(name)] = checked
    return out


@dataclass(frozen=True)
class Policy:
    direction: str
    direction_guessed: bool
    abs_tol: float | None
    rel_tol: float | None
    required: bool
    test: str
    alpha: float


def guess_direction(name: str) -> str:
    key = name.rpartition(":")[2].lower()
    return "lower" if LOWER_IS_BETTER.search(key) else "higher"


def _matches(name: str, pattern: str) -> int:
    """How specifically a policy key names a metric: 3 the full name, 2 the key, 1 a glob, 0 not at all."""
    key = name.partition(":")[2] or name
    if pattern == name:
        return 3
    if pattern == key:
        return 2
    if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(key, pattern):
        return 1
    return 0


def policy_for(name: str, policies: Mapping[str, Mapping[str, Any]]) -> Policy:
    """Merge every policy that names the metric, the most specific last (full name > key > longer glob)."""
    ranked = sorted(((_matches(name, p), len(p), p) for p in policies), key=lambda r: (r[0], r[1]))
    merged: dict[str, Any] = {}
    for rank, _, pattern in ranked:
        if rank:
            merged.update(policies[pattern])
    direction = merged.get("direction")
    abs_tol, rel_tol = merged.get("abs-tol"), merged.get("rel-tol")
    # No tolerance set: single values fall back to DEFAULT_REL_TOL in decide(); with seeds the test alone judges
    # noise (a 1% default there cut 2-sigma detection at 5 seeds from 88% to 62%: benchmarks/metric_noise).
    return Policy(
        direction=direction or guess_direction(name),
        direction_guessed=direction is None,
        abs_tol=abs_tol,
        rel_tol=rel_tol,
        required=bool(merged.get("required", True)),
        test=str(merged.get("test", "welch")),
        alpha=float(merged.get("alpha", 0.05)),
    )


# ---------------------------------------------------------------- the verdict of one metric


def decide(base: Sequence[float], head: Sequence[float], policy: Policy, *, seed: int = 0) -> dict[str, Any]:
    """The verdict and figures for one metric present and valid on both sides."""
    from ci_checks.compare import stats as _stats

    b, h = _stats.mean(base), _stats.mean(head)
    delta = h - b
    relative = delta / abs(b) if b != 0 else None
    rel_tol = policy.rel_tol
    if policy.abs_tol is None and rel_tol is None and (len(base) < 2 or len(head) < 2):
        rel_tol = DEFAULT_REL_TOL
    tol = max(policy.abs_tol or 0.0, (rel_tol or 0.0) * abs(b))
    sign = 1.0 if policy.direction == "higher" else -1.0
    beyond = abs(delta) > tol
    test, p_value, ci = "tolerance", None, None
    significant_better = significant_worse = True
    if len(base) >= 2 and len(head) >= 2:
        test = policy.test
        level = 1.0 - 2.0 * policy.alpha  # a two-sided interval that matches the one-sided test at alpha
        if test == "welch":
            result = _stats.welch(base, head, level=level)
        else:
            result = _stats.bootstrap(base, head, level=level, resamples=BOOTSTRAP_RESAMPLES, seed=seed)
        p_worse = result.p_less if sign > 0 else result.p_greater
        p_better = result.p_greater if sign > 0 else result.p_less
        p_value = min(p_worse, p_better) if delta != 0 else max(p_worse, p_better)
        ci = [result.ci[0], result.ci[1]]
        if test == "welch":
            significant_worse, significant_better = p_worse < policy.alpha, p_better < policy.alpha
        else:
            worse_side = ci[1] < 0 if sign > 0 else ci[0] > 0
            better_side = ci[0] > 0 if sign > 0 else ci[1] < 0
            significant_worse, significant_better = worse_side, better_side
    if delta == 0 or abs(delta) <= 1e-12 * max(1.0, abs(b)):
        verdict = "unchanged"
    elif beyond and delta * sign < 0 and significant_worse:
        verdict = "regressed"
    elif beyond and delta * sign > 0 and significant_better:
        verdict = "improved"
    else:
        verdict = "within-noise"
    return {
        "verdict": verdict,
        "base": b,
        "head": h,
        "delta": delta,
        "relative": relative,
        "test": test,
        "p_value": p_value,
        "ci": ci,
        "tolerance": tol,
        "rel_tol": rel_tol,
    }


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers with enough digits to tell them apart (4 significant digits at least)."""
    for digits in range(4, 11):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if sa != sb or a == b:
            return sa, sb
    return sa, sb


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _pct(relative: float | None) -> str:
    if relative is None:
        return ""
    pct = relative * 100.0
    return f"{pct:+.1f}%" if abs(pct) >= 0.05 or pct == 0 else f"{pct:+.2g}%"


# ---------------------------------------------------------------- git


def _git(args: Sequence[str], cwd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # a fetch that needs credentials fails instead of hanging
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise UserError(
            "git is not installed or not on PATH; compare reads the base revision with git "
            "(or pass --base-metrics-json FILE)"
        ) from None


def _rev(cwd: str, ref: str) -> str | None:
    out = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd)
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass
class Repo:
    toplevel: str
    prefix: str  # the compared folder relative to the top level, with a trailing slash, or ""
    head_sha: str | None
    remote: str | None


def find_repo(path: str) -> Repo | None:
    out = _git(["rev-parse", "--show-toplevel", "--show-prefix"], path)
    if out.returncode != 0:
        return None
    lines = out.stdout.splitlines()
    toplevel = lines[0]
    prefix = lines[1] if len(lines) > 1 else ""
    remotes = _git(["remote"], toplevel).stdout.split()
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    return Repo(toplevel, prefix, _rev(toplevel, "HEAD"), remote)


def _fetch_hint(remote: str | None, branch: str) -> str:
    return f"actions/checkout with fetch-depth: 0, or git fetch {remote or 'origin'} {branch} --depth=50"


def _fetch(repo: Repo, refspecs: Sequence[str], depth_arg: str, log: Callable[[str], None]) -> bool:
    assert repo.remote is not None
    out = _git(["fetch", "--no-tags", "--quiet", depth_arg, repo.remote, *refspecs], repo.toplevel)
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
        out = _git(["symbolic-ref", "--quiet", f"refs/remotes/{repo.remote}/HEAD"], repo.toplevel)
        target = out.stdout.strip()
        if out.returncode == 0 and target.startswith(f"refs/remotes/{repo.remote}/"):
            return [target[len(f"refs/remotes/{repo.remote}/") :]]
    return ["main", "master"]


def resolve_base(
    repo: Repo, ref: str | None, *, fetch_depth: int, env: Mapping[str, str], log: Callable[[str], None]
) -> tuple[str, str] | None:
    """The base (ref, sha): the given ref itself, or the merge-base of HEAD with the default branch.

    In shallow clones fetch what is missing when a remote exists and fetch-depth > 0; otherwise fail with the
    fetch to add. None when there is nothing to compare against at all (a repository without commits).
    """
    can_fetch = repo.remote is not None and fetch_depth > 0
    if ref is not None:
        sha = _rev(repo.toplevel, ref) or (_rev(repo.toplevel, f"{repo.remote}/{ref}") if repo.remote else None)
        branch = ref[len(f"{repo.remote}/") :] if repo.remote and ref.startswith(f"{repo.remote}/") else ref
        if sha is None and can_fetch:
            assert repo.remote is not None
            if _fetch(
                repo, [f"+refs/heads/{branch}:refs/remotes/{repo.remote}/{branch}"], f"--depth={fetch_depth}", log
            ):
                sha = _rev(repo.toplevel, f"{repo.remote}/{branch}")
            elif _fetch(repo, [f"+refs/tags/{branch}:refs/tags/{branch}"], f"--depth={fetch_depth}", log):
                sha = _rev(repo.toplevel, branch)
            elif re.fullmatch(r"[0-9a-f]{40}", ref) and _fetch(repo, [ref], f"--depth={fetch_depth}", log):
                sha = _rev(repo.toplevel, ref)
        if sha is None:
            raise UserError(
                f"base ref '{ref}' is not in this clone (a shallow or single-branch checkout?); fetch it: "
                + _fetch_hint(repo.remote, branch)
            )
        return ref, sha
    candidates = _default_branch(repo, env)
    found: tuple[str, str] | None = None
    for branch in candidates:
        for name in ([f"{repo.remote}/{branch}"] if repo.remote else []) + [branch]:
            sha = _rev(repo.toplevel, name)
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
                sha = _rev(repo.toplevel, f"{repo.remote}/{branch}")
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
    merge_base = _merge_base(repo, sha)
    shallow = _git(["rev-parse", "--is-shallow-repository"], repo.toplevel).stdout.strip() == "true"
    branch = name[len(f"{repo.remote}/") :] if repo.remote and name.startswith(f"{repo.remote}/") else name
    if merge_base is None and shallow and can_fetch:
        assert repo.remote is not None
        spec = f"+refs/heads/{branch}:refs/remotes/{repo.remote}/{branch}"
        for deepen in (fetch_depth, fetch_depth * 10):
            if not _fetch(repo, [repo.head_sha, spec], f"--deepen={deepen}", log):
                _fetch(repo, [], f"--deepen={deepen}", log)
            sha = _rev(repo.toplevel, name) or sha
            merge_base = _merge_base(repo, sha)
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


def _merge_base(repo: Repo, sha: str) -> str | None:
    out = _git(["merge-base", "HEAD", sha], repo.toplevel)
    return out.stdout.strip() or None if out.returncode == 0 else None


# ---------------------------------------------------------------- DVC (only for what git cannot give)


def _dvc_command() -> list[str] | None:
    import importlib.util
    import shutil

    if importlib.util.find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    exe = shutil.which("dvc")
    return [exe] if exe else None


def _dvc_json(head_dir: str, args: Sequence[str], log: Callable[[str], None]) -> Any:
    import json

    dvc = _dvc_command()
    if dvc is None:
        log(f"dvc is not installed, so `dvc {' '.join(args)}` was skipped; install it (pip install 'ci-checks[dvc]')")
        return None
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    out = subprocess.run([*dvc, *args], cwd=head_dir, capture_output=True, text=True, env=env, check=False)
    try:
        return json.loads(out.stdout) if out.returncode == 0 else None
    except ValueError:
        return None
    finally:
        if out.returncode != 0:
            log(f"`dvc {' '.join(args)}` failed: {(out.stderr.strip().splitlines() or ['no output'])[-1]}")


def _dvc_metric_paths(head_dir: str, log: Callable[[str], None]) -> list[str]:
    """Metrics files of a templated dvc.yaml (foreach, matrix, ${vars}), as DVC resolves them."""
    shown = _dvc_json(head_dir, ["metrics", "show", "--json"], log)
    if not isinstance(shown, Mapping):
        return []
    paths: list[str] = []
    for rev in shown.values():
        if isinstance(rev, Mapping):
            paths.extend(str(p) for p in (rev.get("data") or {}))
    return list(dict.fromkeys(paths))


def _dvc_base_values(head_dir: str, sha: str, files: Sequence[str], log: Callable[[str], None]) -> dict[str, Any]:
    """Base values of DVC-cached metrics files (not in git), from `dvc metrics diff`; flattened by DVC."""
    diff = _dvc_json(head_dir, ["metrics", "diff", "--json", "--all", sha, "--targets", *files], log)
    values: dict[str, Any] = {}
    if isinstance(diff, Mapping):
        for file, keys in diff.items():
            for key, change in (keys.items() if isinstance(keys, Mapping) else []):
                if isinstance(change, Mapping) and change.get("old") is not None:
                    values[f"{file}:{key}"] = (file, change["old"])
    return values


# ---------------------------------------------------------------- the comparison


@dataclass
class Sources:
    files: list[FileSpec]
    curves: list[CurveSpec]
    params: list[str]
    configured: set[str]  # paths the user listed (must match a file on some side)
    dvc_cached: set[str]  # dvc.yaml metrics that DVC caches instead of git


def _sources(head: Tree, base: Tree, settings: Mapping[str, Any], head_dir: str, log: Callable[[str], None]) -> Sources:
    from ci_checks.compare.files import CurveSpec, FileSpec, read_dvc_yaml

    files: dict[str, FileSpec] = {}
    curves: dict[str, CurveSpec] = {}
    params = list(settings["params"])
    configured: set[str] = set()
    dvc_cached: set[str] = set()
    for entry in settings["files"]:
        spec = FileSpec(entry["path"], tuple(entry["columns"]), entry["rows"])
        files[spec.path] = spec
        configured.add(spec.path)
        dvclive = entry["path"].rstrip("/")
        if head.is_dir(dvclive) or base.is_dir(dvclive):
            for side in (head, base):
                for tsv in side.glob(f"{dvclive}/plots/metrics/**/*.tsv"):
                    curves.setdefault(tsv, CurveSpec(tsv, "step"))
    if settings["dvc"]:
        for side in (head, base):
            found = read_dvc_yaml(side)
            if found is None:
                continue
            for path, cached in found.metrics.items():
                files.setdefault(path, FileSpec(path))
                if cached:
                    dvc_cached.add(path)
            for curve in found.plots:
                curves.setdefault(curve.path, curve)
            params += [p for p in found.params if p not in params]
            if found.templated and side is head:
                for path in _dvc_metric_paths(head_dir, log):
                    files.setdefault(path, FileSpec(path))
    for entry in settings["curves"]:
        curves[entry["path"]] = CurveSpec(entry["path"], entry["x"], tuple(entry["y"]))
    return Sources(list(files.values()), list(curves.values()), params, configured, dvc_cached)


def _results_base(path: str) -> tuple[dict[str, Metric], dict[str, dict[str, list[float]]], str | None]:
    """Base metrics and curves from a compare results JSON written on main (its head values)."""
    from ci_checks.compare.files import Metric
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
        kind = check.figures.get("kind")
        if kind == "metric":
            samples = check.figures.get("head_samples") or []
            if samples and all(_number(s) for s in samples):
                file = check.check.rpartition(":")[0] or check.check
                metrics[check.check] = Metric(check.check, file, [float(s) for s in samples])
        elif kind == "curve":
            curves[check.check] = {k[5:]: v for k, v in check.series.items() if k.startswith("head:")}
    head = doc.subject.get("head") if isinstance(doc.subject.get("head"), Mapping) else {}
    return metrics, curves, (head or {}).get("sha")


def _training(base_path: str, head_path: str, *, ratio_limit: float, base_name: str) -> CheckResult:
    from ci_checks.results import CheckResult, load_report

    def steps(path: str) -> tuple[int | None, int | None]:
        report = load_report(path)
        for check in report.checks:
            if check.check == "memorization":
                n, run = check.figures.get("steps_to_memorize"), check.figures.get("steps_run")
                steps = int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else None
                return steps, (int(run) if isinstance(run, (int, float)) else None)
        raise UserError(
            f"{path}: no memorization check in these results; write them with "
            f"ci-checks train-check --format json --output {path}"
        )

    (base, base_run), (head, head_run) = steps(base_path), steps(head_path)
    result = CheckResult("training steps-to-memorize")
    ratio = head / base if base and head is not None else None
    result.figures = {"kind": "training", "base": base, "head": head, "ratio": ratio}
    if head is not None and base is not None:
        result.summary = f"{head} vs {base} steps on {base_name} ({ratio:.2g}x)" if ratio else f"{head} vs {base} steps"
        if ratio is not None and ratio > ratio_limit:
            result.add(
                "warning",
                f"memorization: {ratio:.1f}x more steps to memorize than {base_name} ({head} vs {base}); "
                "the change made one-batch learning slower: check the learning rate, initialisation and loss, "
                f"or raise steps-ratio (now {ratio_limit:g}) under [tool.ci-checks.compare]",
                location=None,
                ratio=ratio,
            )
    elif head is None and base is not None:
        result.summary = f"did not memorize (main: {base} steps)"
        result.add(
            "warning",
            f"memorization: did not memorize one batch in {head_run} steps; {base_name} memorized "
            f"it in {base}; see the train-check results for the likely cause",
        )
    elif head is not None:
        result.summary = f"{head} steps ({base_name} did not memorize in {base_run})"
    else:
        result.summary = f"neither side memorized one batch ({base_name}: {base_run} steps, head: {head_run})"
    return result


def _short(ref: str, remote: str | None) -> str:
    return ref[len(remote) + 1 :] if remote and ref.startswith(f"{remote}/") else ref


def compare(
    head_dir: str = ".",
    *,
    base: str | None = None,
    settings: Mapping[str, Any] | None = None,
    policies: Mapping[str, Mapping[str, Any]] | None = None,
    fail_on: str | None = None,
    base_metrics_json: str | None = None,
    base_results: str | None = None,
    head_results: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Compare the metrics of head_dir's working tree with a base revision; return a Report (command "compare")."""
    from ci_checks.compare.files import EmptyTree, GitTree, WorkingTree
    from ci_checks.results import CheckResult, Location, Report

    settings = validate_compare(settings or {}, "compare settings")
    policies = policies or {}
    fail_on = fail_on or settings["fail-on"]
    if fail_on not in FAIL_ON:
        raise UserError(f"fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    env = os.environ if env is None else env
    log = log or (lambda message: None)
    if (base_results is None) != (head_results is None):
        raise UserError("pass both --base-results and --head-results (train-check results of main and of this change)")
    head_dir = os.path.abspath(head_dir)
    if not os.path.isdir(head_dir):
        raise UserError(f"{head_dir}: no such folder; pass the project folder to --head-dir")

    repo = find_repo(head_dir)
    head_tree = WorkingTree(head_dir)
    base_tree: Any = EmptyTree()
    base_curves_doc: dict[str, dict[str, list[float]]] = {}
    base_metrics: dict[str, Metric] = {}
    subject_base: dict[str, Any] = {"ref": "none", "sha": None, "source": "none"}
    base_name = "main"
    if base_metrics_json is not None:
        base_metrics, base_curves_doc, sha = _results_base(base_metrics_json)
        subject_base = {"ref": base_metrics_json, "sha": sha, "source": "results-json"}
    elif repo is None:
        raise UserError(
            f"{head_dir} is not in a git repository, so there is no base revision; run compare in a git "
            "checkout, or pass --base-metrics-json FILE (compare results saved on main)"
        )
    else:
        resolved = resolve_base(
            repo, base or settings.get("base"), fetch_depth=int(settings["fetch-depth"]), env=env, log=log
        )
        if resolved is not None:
            ref, sha = resolved
            base_name = _short(ref, repo.remote)
            base_tree = GitTree(repo.toplevel, sha, repo.prefix, label=f"{base_name} ({sha[:7]})")
            subject_base = {"ref": ref, "sha": sha, "source": "git"}

    try:
        sources = _sources(head_tree, base_tree, settings, head_dir, log)
        head_metrics, curve_data, params_changed, via_dvc = _read(
            sources, head_tree, base_tree, base_metrics, head_dir, log
        )
    finally:
        if isinstance(base_tree, GitTree):
            base_tree.close()
    if via_dvc:
        subject_base["source"] = "dvc"  # base values came (also) through DVC's cache, not only git

    first_run = not base_metrics
    names = list(dict.fromkeys([*head_metrics, *base_metrics]))
    if names:
        _check_policies(policies, names)
    label = base_name if subject_base["source"] != "results-json" else f"{base_name} (saved results)"
    report = Report(command="compare")
    counts: dict[str, int] = {}
    for name in names:
        started = time.perf_counter()
        result = _metric_result(
            name,
            base_metrics.get(name),
            head_metrics.get(name),
            policy_for(name, policies),
            fail_on=fail_on,
            label=label,
            first_run=first_run,
        )
        if repo is not None:
            file = (head_metrics.get(name) or base_metrics[name]).file
            if not re.search(r"[*?\[]", file):
                result.findings = [
                    f if f.location else _located(f, Location(repo.prefix + file)) for f in result.findings
                ]
        result.duration_s = time.perf_counter() - started
        counts[result.figures["verdict"]] = counts.get(result.figures["verdict"], 0) + 1
        report.checks.append(result)
    for unknown in _unmatched_optional(policies, names):
        result = CheckResult(
            f"policy {unknown}", figures={"kind": "policy", "key": unknown, "closest": _closest_metrics(unknown, names)}
        )
        result.add("warning", _unmatched_message(unknown, names))
        result.summary = "names no metric"
        report.checks.append(result)
    for path, head_curve, base_curve in curve_data:
        base_series = base_curves_doc.get(f"curve {path}")
        if head_curve is None and base_curve is None and base_series is None:
            continue
        report.checks.append(_curve_result(path, head_curve, base_curve, base_series))
    if base_results is not None and head_results is not None:
        report.checks.append(
            _training(base_results, head_results, ratio_limit=float(settings["steps-ratio"]), base_name=base_name)
        )
    if not names and not report.checks and subject_base["source"] != "results-json":
        if sources.files:
            raise UserError(
                f"no metrics yet: none of {', '.join(s.path for s in sources.files)} exists in {head_dir}"
                f" or at {label}; run the pipeline (e.g. dvc repro) before ci-checks compare"
            )
        raise UserError(
            f"nothing to compare in {head_dir}: no dvc.yaml with metrics, no files under "
            '[tool.ci-checks.compare] (e.g. files = ["metrics/*.json"]), and no --head-results'
        )
    report.subject = {
        "base": subject_base,
        "head": {"ref": "working tree", "sha": repo.head_sha if repo else None},
        "fail_on": fail_on,
        "params_changed": params_changed,
        "first_run": first_run,
    }
    if first_run:
        log(f"no baseline on {base_name} yet: {len(head_metrics)} metrics recorded, nothing to compare")
    else:
        shown = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v))
        where = (
            f"{subject_base['ref']} ({str(subject_base['sha'])[:7]})" if subject_base["sha"] else subject_base["ref"]
        )
        log(f"working tree vs {where}: {shown or 'no metrics'}")
    return report


def _read(
    sources: Sources,
    head_tree: Tree,
    base_tree: Tree,
    base_metrics: dict[str, Metric],
    head_dir: str,
    log: Callable[[str], None],
) -> tuple[dict[str, Metric], list[tuple[str, Curve | None, Curve | None]], dict[str, dict[str, Any]], bool]:
    """Read metrics (head, and base into base_metrics), curves of both sides, and the params that changed.

    The last item says whether base values came from DVC's cache.
    """
    from ci_checks.compare.files import EmptyTree, GitTree, Metric, read_curve, read_metrics, read_params

    has_base = not isinstance(base_tree, EmptyTree)
    via_dvc = False
    head_metrics: dict[str, Metric] = {}
    for spec in sources.files:
        found = read_metrics(head_tree, spec, head_metrics)
        if has_base:
            found += read_metrics(base_tree, spec, base_metrics)
        if not found and spec.path in sources.configured and not _in_results(spec.path, base_metrics):
            raise UserError(
                f"[tool.ci-checks.compare] files: '{spec.path}' matches no file in {head_dir}"
                + (f" or at {base_tree.label}" if has_base else "")
                + "; fix the path, or run the step that writes it first"
            )
    if isinstance(base_tree, GitTree) and base_tree.read("dvc.lock") is not None:
        # Metrics DVC caches (cache: true, its default) are not in git: only DVC can read their base values.
        cached = [s.path for s in sources.files if s.path in sources.dvc_cached and not base_tree.glob(s.path)]
        if cached:
            values = _dvc_base_values(head_dir, base_tree.rev, cached, log)
            for name, (file, value) in values.items():
                base_metrics.setdefault(name, Metric(name, file)).add(value)
            via_dvc = bool(values)
            if not values:
                log(
                    f"base values of {', '.join(cached)} are in DVC's cache, not git, and DVC could not read them at "
                    f"{base_tree.label}; run `dvc fetch` for that revision, or mark them cache: false in dvc.yaml"
                )
    curves = [
        (c.path, read_curve(head_tree, c), read_curve(base_tree, c) if has_base else None) for c in sources.curves
    ]
    params_changed: dict[str, dict[str, Any]] = {}
    if isinstance(base_tree, GitTree):
        old, new = read_params(base_tree, sources.params), read_params(head_tree, sources.params)
        for key in dict.fromkeys([*old, *new]):
            if old.get(key) != new.get(key) or (key in old) != (key in new):
                params_changed[key] = {"old": old.get(key), "new": new.get(key)}
    return head_metrics, curves, params_changed, via_dvc


def _in_results(path: str, metrics: Mapping[str, Metric]) -> bool:
    return any(m.file == path for m in metrics.values())


def _located(finding: Finding, location: Location) -> Finding:
    finding.location = location
    return finding


def _closest_metrics(key: str, names: Sequence[str]) -> list[str]:
    keys = {n.partition(":")[2] or n: n for n in names}
    found = difflib.get_close_matches(key, list(names), n=3, cutoff=0.4)
    found += [keys[k] for k in difflib.get_close_matches(key, list(keys), n=3, cutoff=0.4)]
    return list(dict.fromkeys(found))[:3]


def _unmatched_message(key: str, names: Sequence[str]) -> str:
    closest = _closest_metrics(key, names)
    hint = f"closest: {', '.join(closest)}" if closest else f"metrics are named like '{names[0]}'"
    return (
        f"[tool.ci-checks.metrics] '{key}' names no metric on either side ({hint}); fix the name, "
        "or set required = false if the metric may be absent"
    )


def _unmatched(policies: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    return [p for p in policies if not any(_matches(n, p) for n in names)]


def _check_policies(policies: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> None:
    for key in _unmatched(policies, names):
        if policies[key].get("required", True):
            raise UserError(_unmatched_message(key, names))


def _unmatched_optional(policies: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    return [k for k in _unmatched(policies, names) if names and not policies[k].get("required", True)]


def _metric_result(
    name: str, base: Metric | None, head: Metric | None, policy: Policy, *, fail_on: str, label: str, first_run: bool
) -> CheckResult:
    from ci_checks.results import CheckResult
    from ci_checks.compare.stats import mean

    result = CheckResult(name)
    figures: dict[str, Any] = {
        "kind": "metric",
        "verdict": "",
        "base": None,
        "head": None,
        "base_samples": list(base.samples) if base is not None and base.invalid is None else [],
        "head_samples": list(head.samples) if head is not None and head.invalid is None else [],
        "delta": None,
        "relative": None,
        "direction": policy.direction,
        "direction_guessed": policy.direction_guessed,
        "required": policy.required,
        "test": "tolerance",
        "p_value": None,
        "ci": None,
        "abs_tol": policy.abs_tol,
        "rel_tol": policy.rel_tol,
    }
    result.figures = figures
    if figures["base_samples"]:
        figures["base"] = mean(figures["base_samples"])
    if figures["head_samples"]:
        figures["head"] = mean(figures["head_samples"])
    seeds = _seeds(figures["base_samples"], figures["head_samples"])
    guessed = (
        f"; direction guessed: {policy.direction} is better, set direction under [tool.ci-checks.metrics]"
        if policy.direction_guessed
        else ""
    )

    def fail(kind: str) -> bool:
        """Whether a metric of this kind fails the run under fail-on ("invalid" only under fail-on any)."""
        if fail_on in ("never", "any"):
            return fail_on == "any"
        if kind == "regressed":
            return policy.required
        return kind == "missing" and fail_on == "missing" and policy.required

    if head is None:
        assert base is not None, "a metric is on at least one side"
        figures["verdict"] = "missing"
        was = _fmt(figures["base"]) if figures["base"] is not None else str(base.invalid)
        result.summary = f"{was} -> missing"
        result.add(
            "error" if fail("missing") else "warning",
            f"{name} is missing from the working tree (was {was} on {label}); rerun the step that writes "
            f"{base.file}, or set required = false under [tool.ci-checks.metrics] if it was removed on purpose",
            was=figures["base"],
        )
        return result
    if head.invalid is not None:
        figures["verdict"] = "invalid"
        prior = _fmt(figures["base"]) if figures["base"] is not None else None
        result.summary = f"{prior or (base.invalid if base else '-')} -> {head.invalid}, invalid"
        if base is not None and base.invalid is not None:
            return result  # as unusable on the base: nothing new to report on every pull request
        broke = head.nonfinite and prior is not None  # a number that went NaN: the run itself is broken
        why = (
            "training or evaluation likely diverged, or the metric divided by zero"
            if head.nonfinite
            else "write a number (or a list of numbers, one per seed), or move it out of the metrics file"
        )
        severity = "error" if fail("invalid") or (broke and fail("regressed")) else "warning"
        result.add(
            severity,
            f"{name} is {head.invalid} in the working tree"
            + (f" (was {prior} on {label})" if prior else "")
            + f": not a usable metric; {why}",
            reason=head.invalid,
        )
        return result
    if base is None or first_run:
        figures["verdict"] = "new"
        result.summary = f"{_fmt(figures['head'])}{seeds} (new" + ("; no baseline yet)" if first_run else ")")
        return result
    if base.invalid is not None:
        figures["verdict"] = "invalid"
        result.summary = f"{base.invalid} on {label} -> {_fmt(figures['head'])}{seeds}"
        return result

    decided = decide(base.samples, head.samples, policy, seed=zlib.crc32(name.encode()))
    for key in ("verdict", "delta", "relative", "test", "p_value", "ci", "rel_tol"):
        figures[key] = decided[key]
    b, h = _fmt_pair(decided["base"], decided["head"])
    pct = _pct(decided["relative"]) if decided["verdict"] != "unchanged" else ""
    change = f" ({pct}{', ' if pct and seeds else ''}{seeds.strip(' ()')})" if pct or seeds else ""
    evidence = _evidence(decided, policy)
    verdict = decided["verdict"]
    result.summary = f"{b} -> {h}{change}, {verdict}" + (f" ({evidence})" if evidence else "")
    if verdict == "regressed":
        why = f"worse by {abs(decided['delta']):.3g}, beyond the tolerance {decided['tolerance']:.3g}"
        if decided["test"] == "welch":
            why += f", and significant (p={decided['p_value']:.2g} < alpha {policy.alpha:g}, Welch's t-test)"
        elif decided["test"] == "bootstrap":
            lo, hi = decided["ci"]
            why += (
                f", and significant ({100 - 200 * policy.alpha:g}% bootstrap interval [{lo:.3g}, {hi:.3g}] excludes 0)"
            )
        result.add(
            "error" if fail("regressed") else "warning",
            f"{name} regressed: {b} -> {h}{change} against {label}: {why}{guessed}; fix the regression, or if "
            "it is intended loosen abs-tol/rel-tol or set required = false under [tool.ci-checks.metrics]",
            delta=decided["delta"],
            tolerance=decided["tolerance"],
            p_value=decided["p_value"],
        )
    return result


def _seeds(base: Sequence[float], head: Sequence[float]) -> str:
    if len(base) > 1 or len(head) > 1:
        return f" ({len(base)} vs {len(head)} samples)" if base else f" ({len(head)} samples)"
    return ""


def _evidence(decided: Mapping[str, Any], policy: Policy) -> str:
    if decided["verdict"] == "unchanged":
        return ""
    if decided["test"] == "welch":
        return f"p={decided['p_value']:.2g}"
    if decided["test"] == "bootstrap":
        lo, hi = decided["ci"]
        return f"{100 - 200 * policy.alpha:g}% CI [{lo:+.3g}, {hi:+.3g}]"
    return f"tolerance {decided['tolerance']:.3g}"


def _curve_result(
    path: str, head: Curve | None, base: Curve | None, base_series: Mapping[str, list[float]] | None
) -> CheckResult:
    from ci_checks.results import CheckResult

    x = (head or base or (None, {}))[0] or "step"
    series: dict[str, list[float]] = {}
    ys: list[str] = []
    for side, data in (("head", head), ("base", base)):
        if data is None:
            continue
        xname, columns = data
        for column, values in columns.items():
            series[f"{side}:{column}"] = values
            if column != xname and column not in ys:
                ys.append(column)
    if base is None and base_series:
        for column, values in base_series.items():
            series[f"base:{column}"] = list(values)
    result = CheckResult(f"curve {path}", figures={"kind": "curve", "x": x, "y": ys}, series=series)
    parts = []
    for y in ys:
        h, b = series.get(f"head:{y}") or [], series.get(f"base:{y}") or []
        if h and b:
            parts.append(f"{y}: final {_fmt(h[-1])} vs {_fmt(b[-1])} ({len(h)} vs {len(b)} points)")
        elif h:
            parts.append(f"{y}: final {_fmt(h[-1])} ({len(h)} points, none on base)")
        elif b:
            parts.append(f"{y}: only on base ({len(b)} points)")
    result.summary = "; ".join(parts)
    return result


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        metavar="REF",
        help="git revision to compare with (default: [tool.ci-checks.compare] "
        "base, else the merge-base of HEAD with the remote's default branch, else main)",
    )
    parser.add_argument(
        "--head-dir",
        default=".",
        metavar="DIR",
        help="project folder whose working tree holds the new metrics (default: .)",
    )
    parser.add_argument(
        "--config",
        metavar="PYPROJECT",
        help="pyproject.toml to read [tool.ci-checks] from " "(default: the nearest one above --head-dir)",
    )
    parser.add_argument(
        "--format", choices=("text", "json", "github"), default=None, help="output format (default: text)"
    )
    parser.add_argument("--output", metavar="FILE", help="also write the JSON results to FILE (default: none)")
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default=None,
        help="what fails the run: regressed (a required metric), missing (also a required metric "
        "gone), any (any metric regressed, missing or invalid), never (default: [tool.ci-checks."
        "compare] fail-on, else regressed)",
    )
    parser.add_argument(
        "--base-results",
        metavar="FILE",
        help="train-check results JSON of the base, to compare " "steps-to-memorize (default: none)",
    )
    parser.add_argument(
        "--head-results", metavar="FILE", help="train-check results JSON of this change " "(default: none)"
    )
    parser.add_argument(
        "--base-metrics-json",
        metavar="FILE",
        help="compare results JSON saved by the last run on "
        "main: its values are the baseline, for repositories that do not commit metrics "
        "(default: read the base from git)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from ci_checks import config as _config
    from ci_checks.render import emit
    from ci_checks.checks import default_settings

    config_path = args.config or _config.find_pyproject(args.head_dir)
    config = _config.load_config(config_path, defaults=default_settings())
    settings = config.get("compare") or validate_compare({}, "[tool.ci-checks.compare]")
    fmt = args.format or config.get("format", "text")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"ci-checks compare: {message}", file=sys.stderr)

    report = compare(
        args.head_dir,
        base=args.base,
        settings=settings,
        policies=config.get("metrics") or {},
        fail_on=args.fail_on,
        base_metrics_json=args.base_metrics_json,
        base_results=args.base_results,
        head_results=args.head_results,
        log=log,
    )
    emit(report, fmt=fmt, output=args.output, stream=sys.stdout)
    return int(report.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    from ci_checks.main import main as cli

    return cli(["compare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
