"""rerun: replay recorded training runs (git refs with DVC params, data and metrics) with the current code.

Each run: a git worktree of the current code (uncommitted changes included), the ref's params files, dvc.lock
and .dvc files, its data checked out from the DVC cache or remote, the pipeline run again, and the new metrics
and curves compared with the ones recorded at the ref under the [tool.ci-checks.metrics] policy.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ci_checks import _dvc, _git, _io
from ci_checks._errors import UserError, signals_deferred
from ci_checks.commands._rerun_workspace import Workdir, build, claim
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
    timeout = settings["timeout-minutes"] if args.timeout_minutes is None else args.timeout_minutes
    if not 0 < timeout < math.inf:
        raise UserError(f"--timeout-minutes must be a positive number of minutes, got {args.timeout_minutes:g}")
    if args.workdir == "":
        raise UserError("--workdir must name a folder, got ''")
    project = os.path.dirname(os.path.abspath(config_path)) if config_path else os.getcwd()
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    report = replay(
        project,
        runs,
        policies=config.get("metrics", {}),
        command=args.pipeline_command or settings["command"],
        device=args.device,
        timeout_minutes=timeout,
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
        minutes = spec.get("timeout-minutes", timeout_minutes)
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes < math.inf:
            raise UserError(
                f"run {spec['name']!r}: timeout-minutes must be a positive number of minutes, got {minutes!r}"
            )
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
                timeout=float(minutes) * 60,
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


KILL_GRACE_S = 10.0  # between SIGTERM and SIGKILL to the pipeline's process group
RESTORE_MIN_S = 300.0  # the least time restoring the data (dvc checkout/fetch) gets, whatever the run's limit


def _run_dvc(args: Sequence[str], cwd: str, deadline: float) -> subprocess.CompletedProcess[str]:
    return _dvc.run(args, cwd, why="rerun replays DVC pipelines with it", timeout=max(1.0, deadline - time.monotonic()))


def _restore_data(project: str, ws: str, deadline: float, log: Callable[[str], None]) -> None:
    """Use the project's DVC cache (and its local config, which may name the remote's credentials)."""
    cache = os.path.join(project, ".dvc", "cache")
    if os.path.isdir(os.path.join(project, ".dvc")):
        local = os.path.join(project, ".dvc", "config.local")
        if os.path.exists(local) and os.path.isdir(os.path.join(ws, ".dvc")):
            with open(local, "rb") as fh:
                _io.write_bytes(os.path.join(ws, ".dvc", "config.local"), fh.read())
        _run_dvc(["config", "--local", "cache.dir", cache], ws, deadline)
    if not os.path.exists(os.path.join(ws, "dvc.lock")):
        return
    out = _run_dvc(["checkout", "--quiet"], ws, deadline)
    if out.returncode == 0:
        return
    log("data recorded at the ref is not in the local DVC cache: dvc fetch")
    fetched = _run_dvc(["fetch"], ws, deadline)
    out = _run_dvc(["checkout", "--quiet"], ws, deadline) if fetched.returncode == 0 else fetched
    if out.returncode != 0:
        remote = _run_dvc(["remote", "list"], ws, deadline).stdout.strip().replace("\t", " ") or "none configured"
        raise UserError(
            f"cannot fetch the data recorded at the ref from the DVC remote ({remote}): "
            f"{_dvc.last_line(fetched)} / {_dvc.last_line(out)} - check that the remote is reachable from this "
            "runner and its credentials (dvc remote list, .dvc/config.local)"
        )


def _pipeline_argv(cmd: str, cwd: str, env: Mapping[str, str], name: str) -> list[str]:
    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        raise UserError(f"rerun {name}: cannot parse the pipeline command {cmd!r} ({e}); fix its quoting") from None
    program = os.path.join(cwd, argv[0]) if argv and os.sep in argv[0] else argv[0] if argv else ""
    if not program or shutil.which(program, path=env.get("PATH")) is None:
        raise UserError(
            f"rerun {name}: the pipeline command {cmd!r} names no program found on PATH; install it or fix 'command'"
        )
    return argv


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    """The reader thread: every line of the pipeline's output, then None at the end of it."""
    try:
        for line in stream:
            lines.put(line.rstrip("\n"))
    except (OSError, ValueError):
        pass
    finally:
        lines.put(None)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - the group id now belongs to someone else's processes
        return False
    return True


def stop_group(proc: subprocess.Popen[str], *, grace: float = KILL_GRACE_S) -> None:
    """End the pipeline's whole process group (dvc, the stage's shell, the training script and what they started):
    SIGTERM, up to `grace` seconds for them to exit (a training script may save a checkpoint), then SIGKILL.
    SIGINT/SIGTERM to ci-checks wait until it is done, so no process is left behind."""
    with signals_deferred():
        pgid = proc.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            if proc.returncode is not None and not _group_alive(pgid):
                break
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()


def _run_pipeline(
    cmd: str, cwd: str, env: Mapping[str, str], deadline: float, name: str, log: Callable[[str], None]
) -> tuple[int | None, float, list[str]]:
    """Run the pipeline in its own process group with streamed, prefixed output.

    The time limit does not depend on the output: the main thread waits on a queue fed by a reader thread, and at
    the deadline (or on SIGINT/SIGTERM) the whole group is stopped. Returns (exit code or None when it timed out,
    seconds, last lines).
    """
    start = time.monotonic()
    tail: list[str] = []
    argv = _pipeline_argv(cmd, cwd, env, name)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as e:
        raise UserError(
            f"rerun {name}: cannot start the pipeline command {cmd!r} ({e.strerror or e}); fix 'command'"
        ) from None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), name=f"rerun {name} output", daemon=True)
    reader.start()
    try:
        ended = False
        while not ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop_group(proc)
                return None, time.monotonic() - start, tail
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                # The leader exited but something it started keeps the output open: do not wait for that.
                ended = proc.poll() is not None and lines.empty()
                continue
            if line is None:
                ended = True
                continue
            tail = (tail + [line])[-20:]
            log(f"[{name} {time.monotonic() - start:6.0f}s] {line}")
        while proc.poll() is None:
            if time.monotonic() >= deadline:
                stop_group(proc)
                return None, time.monotonic() - start, tail
            time.sleep(0.05)
        stop_group(proc, grace=0.0)  # what the pipeline left running would be an orphan
    except BaseException:  # SIGINT, SIGTERM, or the kit's own error: no pipeline left running
        stop_group(proc)
        raise
    finally:
        reader.join(timeout=1.0)
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
    return proc.returncode, time.monotonic() - start, tail


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
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    if safe != name:  # "a b" and "a_b" must not share (and remove) each other's workspaces
        safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:6]
    head = repo.head_sha
    folder = Workdir(workdir)
    with signals_deferred():  # a workspace exists only together with its state file and lock
        folder.ensure()
        ws, resuming = claim(repo, folder, safe, sha, head, resume)
        ws.write_state(run=name, ref=spec["ref"], sha=sha, head=head, status="running", pid=os.getpid())
    summary = CheckResult(
        f"rerun {name}",
        figures={"kind": Kind.RERUN.value, "ref": spec["ref"], "sha": sha, "device": device, "resumed": resuming},
    )
    try:
        ws_project = os.path.join(ws.path, repo.prefix) if resuming else build(repo, ws, sha, folder, log)
        # Restoring the data gets the run's time limit (at least RESTORE_MIN_S), the pipeline its own: a DVC remote
        # that never answers is stopped too, and a short limit still leaves DVC time to start.
        _restore_data(project, ws_project, time.monotonic() + max(timeout, RESTORE_MIN_S), log)
        stages = " ".join(shlex.quote(s) for s in spec.get("stages", []))
        cmd = spec.get("command") or command or f"dvc repro {'' if resuming else '--force '}{stages}".strip()
        if cmd.startswith("dvc "):
            cmd = shlex.join(_dvc.require("rerun replays DVC pipelines with it")) + cmd[3:]
        os.makedirs(ws.checkpoints, exist_ok=True)
        # Stages that call `python` get the interpreter ci-checks runs in (its virtualenv may not be on PATH).
        search_path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        env = {
            **os.environ,
            "PATH": search_path,
            "CI_CHECKS_DEVICE": device,
            "CI_CHECKS_CHECKPOINT_DIR": ws.checkpoints,
            **_dvc.ENV,
        }
        log(f"[{name}] {'resuming' if resuming else 'replaying'} {spec['ref']} ({sha[:7]}) on {device}: {cmd}")
        code, seconds, tail = _run_pipeline(cmd, ws_project, env, time.monotonic() + timeout, name, log)
        summary.figures.update(seconds=round(seconds, 2), command=cmd, returncode=code)
        if code is None:
            summary.add(
                "error",
                f"rerun {name}: the pipeline did not finish within {timeout / 60:g} min and was stopped (its whole "
                "process group); rerun with --resume to continue from its checkpoints, or raise timeout-minutes",
            )
            summary.summary = "timed out"
            keep = True
            ws.write_state(run=name, ref=spec["ref"], sha=sha, head=head, status="timed-out")
            return [summary]
        if code != 0:
            last = next((line for line in reversed(tail) if line.strip()), "")
            summary.add("error", f"rerun {name}: the pipeline failed with exit code {code} on the new code: {last}")
            summary.summary = f"pipeline failed (exit {code})"
            return [summary]
        compared = compare(ws_project, base=sha, policies=policies, fail_on="regressed", env={})
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
        ws.write_state(run=name, ref=spec["ref"], sha=sha, head=head, status="done")
        return [summary, *results]
    finally:
        with signals_deferred():
            if keep:
                ws.lock.release()
                log(f"[{name}] workspace kept: {ws.path}")
            else:
                ws.remove(repo)
                folder.tidy()
