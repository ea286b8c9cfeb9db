"""rerun: replay recorded training runs (git refs with DVC params, data and metrics) with the current code.

Each run: a git worktree of the current code (uncommitted changes included), the ref's params files, dvc.lock
and .dvc files, its data checked out from the DVC cache or remote, the pipeline run again, and the new metrics
and curves compared with the ones recorded at the ref under the [tool.ci-checks.metrics] policy.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ci_checks import _dvc, _git
from ci_checks._errors import UserError
from ci_checks.commands import add_config_option, add_results_options, emit_results, project_config
from ci_checks.config import closest, validate_section
from ci_checks.results import CheckResult, Kind, Report, Verdict

HELP = "replay recorded training runs (git refs with DVC params/data) with the current code and compare outcomes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        dest="runs",
        action="append",
        default=[],
        metavar="NAME",
        help="replay this configured run (repeatable; default: all runs in [tool.ci-checks.rerun])",
    )
    parser.add_argument("--ref", help="replay one ad-hoc run recorded at this git ref (tag or commit)")
    parser.add_argument("--list", action="store_true", help="print the configured runs as a JSON array (a job matrix)")
    parser.add_argument(
        "--command",
        dest="pipeline_command",
        help="command that runs the pipeline (default: dvc repro --force [stages])",
    )
    parser.add_argument(
        "--device",
        help="device passed to the pipeline as CI_CHECKS_DEVICE (default: cuda if " "torch sees a GPU, else cpu)",
    )
    parser.add_argument("--timeout-minutes", type=float, help="wall-clock limit per run (default: 120)")
    parser.add_argument("--workdir", help="where workspaces live (default: .ci-checks/rerun, git-ignored)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in its kept workspace "
        "(DVC skips finished stages; the pipeline finds its checkpoints in CI_CHECKS_CHECKPOINT_DIR)",
    )
    parser.add_argument("--keep", action="store_true", help="keep workspaces after the run (default: removed)")
    add_config_option(parser)
    add_results_options(parser)
    parser.add_argument("--quiet", action="store_true", help="do not stream the pipeline's output")


def run(args: argparse.Namespace) -> int:
    config, config_path = project_config(args)
    settings = config.get("rerun") or validate_section("rerun")
    runs = list(settings["runs"])
    if args.list:
        print(json.dumps([r["name"] for r in runs]))
        return 0
    if args.ref:
        runs = [{"name": args.ref, "ref": args.ref}]
    elif args.runs:
        known = {r["name"]: r for r in runs}
        for name in args.runs:
            if name not in known:
                raise UserError(
                    f"no recorded run named {name!r} in [tool.ci-checks.rerun]; {closest(name, list(known))}"
                )
        runs = [known[n] for n in args.runs]
    if not runs:
        raise UserError(
            "nothing to replay: pass --ref REF, or list runs under [tool.ci-checks.rerun] "
            '(runs = [{name = "v1", ref = "v1.0"}])'
        )
    project = os.path.dirname(os.path.abspath(config_path)) if config_path else os.getcwd()
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    report = replay(
        project,
        runs,
        policies=config.get("metrics", {}),
        command=args.pipeline_command or settings["command"],
        device=args.device,
        timeout_minutes=args.timeout_minutes or settings["timeout-minutes"],
        workdir=args.workdir or settings["workdir"],
        resume=args.resume,
        keep=args.keep,
        log=log,
    )
    return emit_results(report, args, config)


def default_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def replay(
    project: str,
    runs: Sequence[Mapping[str, Any]],
    *,
    policies: Mapping[str, Mapping[str, Any]] | None = None,
    command: str | None = None,
    device: str | None = None,
    timeout_minutes: float = 120,
    workdir: str = ".ci-checks/rerun",
    resume: bool = False,
    keep: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> Report:
    """Replay each run; return one Report (command "rerun") with a result per run and per metric."""
    from ci_checks.compare import find_repo

    project = os.path.abspath(project)
    repo = find_repo(project)
    if repo is None:
        raise UserError(f"{project} is not in a git repository; rerun replays git refs")
    device = device or default_device()
    report = Report(
        "rerun",
        subject={
            "base": {"ref": "recorded runs", "sha": None, "source": "git"},
            "device": device,
            "runs": [r["name"] for r in runs],
        },
    )
    for spec in runs:
        sha = _git.rev_parse(repo.toplevel, spec["ref"])
        if not sha:
            raise UserError(
                f"run {spec['name']!r}: git ref {spec['ref']!r} does not exist here; fetch it "
                f"(git fetch --tags, or actions/checkout with fetch-depth: 0)"
            )
        _require_recorded_metrics(repo, sha, spec)
        merged = dict(policies or {})
        merged.update(spec.get("metrics", {}))
        report.checks.extend(
            _replay_one(
                repo,
                project,
                sha,
                spec,
                policies=merged,
                command=command,
                device=device,
                timeout=float(spec.get("timeout-minutes", timeout_minutes)) * 60,
                workdir=os.path.join(project, workdir),
                resume=resume,
                keep=keep,
                log=log,
            )
        )
    return report


def _require_recorded_metrics(repo: Any, sha: str, spec: Mapping[str, Any]) -> None:
    from ci_checks.compare.files import read_dvc_yaml
    from ci_checks.compare.trees import GitTree

    tree = GitTree(repo.toplevel, sha, repo.prefix, label=f"{spec['ref']} ({sha[:7]})")
    try:
        outputs = read_dvc_yaml(tree)
        recorded = [p for p in (outputs.metrics if outputs else {}) if tree.read(p) is not None]
    finally:
        tree.close()
    if outputs is None:
        raise UserError(
            f"run {spec['name']!r}: {spec['ref']} has no dvc.yaml in {repo.prefix or 'the repository root'}; "
            "rerun replays DVC pipelines recorded at a ref"
        )
    if not recorded:
        raise UserError(
            f"run {spec['name']!r}: {spec['ref']} has no recorded metrics (none of "
            f"{', '.join(outputs.metrics) or 'the dvc.yaml metrics'} is committed there); record a run by "
            "committing its metrics (cache: false) and tagging the commit"
        )


def _workspace(repo: Any, project: str, sha: str, path: str, log: Callable[[str], None]) -> str:
    """A worktree of HEAD plus the working tree's changes, then the ref's params, lock and .dvc files."""
    from ci_checks.compare.files import read_dvc_yaml
    from ci_checks.compare.trees import GitTree

    if os.path.exists(path):
        _remove_workspace(repo, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _git.run(["worktree", "add", "--detach", "--force", path, "HEAD"], repo.toplevel)
    changed = _git.output(["ls-files", "-m", "-o", "--exclude-standard", "-z"], repo.toplevel).split("\0")
    deleted = set(_git.output(["ls-files", "-d", "-z"], repo.toplevel).split("\0"))
    rel_workdir = os.path.relpath(os.path.dirname(path), repo.toplevel)
    for name in filter(None, changed):
        if name.startswith(rel_workdir + os.sep) or name in deleted:
            continue
        dst = os.path.join(path, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(repo.toplevel, name), dst)
    for name in filter(None, deleted):
        if os.path.exists(os.path.join(path, name)):
            os.remove(os.path.join(path, name))
    ws_project = os.path.join(path, repo.prefix)
    tree = GitTree(repo.toplevel, sha, repo.prefix, label=sha[:7])
    try:
        outputs = read_dvc_yaml(tree)
        pinned = {"dvc.lock", *(outputs.params if outputs else []), "params.yaml"}
        pinned.update(f for f in tree.files if f.endswith(".dvc"))
        for name in sorted(pinned):
            data = tree.read(name)
            if data is not None:
                with open(os.path.join(ws_project, name), "wb") as fh:
                    fh.write(data)
    finally:
        tree.close()
    log(f"workspace {path}: current code, params/lock/data of {sha[:7]}")
    return ws_project


def _remove_workspace(repo: Any, path: str) -> None:
    _git.run(["worktree", "remove", "--force", path], repo.toplevel, check=False)
    shutil.rmtree(path, ignore_errors=True)
    _git.run(["worktree", "prune"], repo.toplevel, check=False)


def _run_dvc(args: Sequence[str], cwd: str) -> subprocess.CompletedProcess[str]:
    return _dvc.run(args, cwd, why="rerun replays DVC pipelines with it")


def _restore_data(project: str, ws: str, log: Callable[[str], None]) -> None:
    """Use the project's DVC cache (and its local config, which may name the remote's credentials)."""
    cache = os.path.join(project, ".dvc", "cache")
    if os.path.isdir(os.path.join(project, ".dvc")):
        local = os.path.join(project, ".dvc", "config.local")
        if os.path.exists(local):
            shutil.copy2(local, os.path.join(ws, ".dvc", "config.local"))
        _run_dvc(["config", "--local", "cache.dir", cache], ws)
    if not os.path.exists(os.path.join(ws, "dvc.lock")):
        return
    out = _run_dvc(["checkout", "--quiet"], ws)
    if out.returncode == 0:
        return
    log("data recorded at the ref is not in the local DVC cache: dvc fetch")
    fetched = _run_dvc(["fetch"], ws)
    out = _run_dvc(["checkout", "--quiet"], ws) if fetched.returncode == 0 else fetched
    if out.returncode != 0:
        remote = _run_dvc(["remote", "list"], ws).stdout.strip().replace("\t", " ") or "none configured"
        raise UserError(
            f"cannot fetch the data recorded at the ref from the DVC remote ({remote}): "
            f"{_dvc.last_line(fetched)} / {_dvc.last_line(out)} - check that the remote is reachable from this "
            "runner and its credentials (dvc remote list, .dvc/config.local)"
        )


def _run_pipeline(
    cmd: str, cwd: str, env: Mapping[str, str], timeout: float, name: str, log: Callable[[str], None]
) -> tuple[int | None, float, list[str]]:
    """Run the pipeline with streamed, prefixed output; kill its process group at the time limit."""
    start = time.perf_counter()
    tail: list[str] = []
    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        raise UserError(f"rerun {name}: cannot parse the pipeline command {cmd!r} ({e}); fix its quoting") from None
    program = os.path.join(cwd, argv[0]) if argv and os.sep in argv[0] else argv[0] if argv else ""
    if not program or shutil.which(program, path=env.get("PATH")) is None:
        raise UserError(
            f"rerun {name}: the pipeline command {cmd!r} names no program found on PATH; install it or fix 'command'"
        )
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = (tail + [line])[-20:]
            log(f"[{name} {time.perf_counter() - start:6.0f}s] {line}")
            if time.perf_counter() - start > timeout:
                raise subprocess.TimeoutExpired(cmd, timeout)
        proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, time.perf_counter() - start, tail
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        raise
    return proc.returncode, time.perf_counter() - start, tail


def _replay_one(
    repo: Any,
    project: str,
    sha: str,
    spec: Mapping[str, Any],
    *,
    policies: Mapping[str, Any],
    command: str | None,
    device: str,
    timeout: float,
    workdir: str,
    resume: bool,
    keep: bool,
    log: Callable[[str], None],
) -> list[CheckResult]:
    from ci_checks.compare import compare

    name = str(spec["name"])
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = os.path.join(workdir, safe)
    state_file = os.path.join(workdir, f"{safe}.state.json")
    head = repo.head_sha
    state = {}
    if resume and os.path.exists(state_file):
        with open(state_file, encoding="utf-8") as fh:
            state = json.load(fh)
    resuming = bool(state) and state.get("sha") == sha and state.get("head") == head and os.path.isdir(path)
    summary = CheckResult(
        f"rerun {name}",
        figures={"kind": Kind.RERUN.value, "ref": spec["ref"], "sha": sha, "device": device, "resumed": resuming},
    )
    ws = os.path.join(path, repo.prefix) if resuming else _workspace(repo, project, sha, path, log)
    os.makedirs(workdir, exist_ok=True)
    ignore = os.path.join(workdir, ".gitignore")
    if not os.path.exists(ignore):  # keep workspaces and state out of the user's `git status`
        with open(ignore, "w", encoding="utf-8") as fh:
            fh.write("*\n")
    with open(state_file, "w", encoding="utf-8") as fh:
        json.dump({"sha": sha, "head": head, "status": "running"}, fh)
    try:
        _restore_data(project, ws, log)
        stages = " ".join(shlex.quote(s) for s in spec.get("stages", []))
        cmd = spec.get("command") or command or f"dvc repro {'' if resuming else '--force '}{stages}".strip()
        if cmd.startswith("dvc "):
            cmd = shlex.join(_dvc.require("rerun replays DVC pipelines with it")) + cmd[3:]
        checkpoints = os.path.join(path, ".checkpoints")
        os.makedirs(checkpoints, exist_ok=True)
        # Stages that call `python` get the interpreter ci-checks runs in (its virtualenv may not be on PATH).
        search_path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        env = {
            **os.environ,
            "PATH": search_path,
            "CI_CHECKS_DEVICE": device,
            "CI_CHECKS_CHECKPOINT_DIR": checkpoints,
            **_dvc.ENV,
        }
        log(f"[{name}] {'resuming' if resuming else 'replaying'} {spec['ref']} ({sha[:7]}) on {device}: {cmd}")
        code, seconds, tail = _run_pipeline(cmd, ws, env, timeout, name, log)
        summary.figures.update(seconds=round(seconds, 2), command=cmd, returncode=code)
        if code is None:
            summary.add(
                "error",
                f"rerun {name}: the pipeline did not finish within {timeout / 60:.0f} min and was "
                "stopped; rerun with --resume to continue from its checkpoints, or raise timeout-minutes",
            )
            summary.summary = "timed out"
            keep = True
            return [summary]
        if code != 0:
            last = next((line for line in reversed(tail) if line.strip()), "")
            summary.add("error", f"rerun {name}: the pipeline failed with exit code {code} on the new code: {last}")
            summary.summary = f"pipeline failed (exit {code})"
            return [summary]
        compared = compare(ws, base=sha, policies=policies, fail_on="regressed", env={})
        results: list[CheckResult] = []
        for check in compared.checks:
            check.check = f"{name}: {check.check}"
            for finding in check.findings:
                finding.check = check.check
                finding.location = None
            results.append(check)
        metrics = [(c, m) for c in results if (m := c.metric) is not None]
        regressed = [(c, m) for c, m in metrics if m.verdict is Verdict.REGRESSED]
        summary.figures.update(metrics=len(metrics), regressed=len(regressed))
        summary.summary = (
            f"replayed {spec['ref']} in {seconds:.1f}s on {device}: {len(metrics)} metrics, "
            f"{len(regressed)} regressed"
        )
        if regressed:
            first, worst = regressed[0]
            summary.add(
                "error",
                f"rerun {name}: replaying {spec['ref']} with the new code regressed {len(regressed)} "
                f"metric(s), e.g. {first.check.split(': ', 1)[1]} {worst.base:.4g} -> {worst.head:.4g}",
            )
        with open(state_file, "w", encoding="utf-8") as fh:
            json.dump({"sha": sha, "head": head, "status": "done"}, fh)
        return [summary, *results]
    finally:
        if not keep:
            _remove_workspace(repo, path)
            if os.path.exists(state_file):
                os.remove(state_file)
