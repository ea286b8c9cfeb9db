"""rollback: the drill that loads a previous release's model artifact in today's serving path and scores it.

The release's artifact is read at its git revision (from git, else from DVC: its cache, then its remote), loaded
into today's model class, exported to ONNX with today's code and run in onnxruntime, as export-parity does; its
outputs on the golden suites must match what that release recorded, within the golden tolerances. The switch
(fetch, load, first inference) is timed and reported, never judged: verdicts do not depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ci_checks import _dvc, _git
from ci_checks._errors import UserError, signals_deferred
from ci_checks.commands import add_config_option, add_results_options, add_spec_option, emit_results
from ci_checks.commands import project_config, spec_ref
from ci_checks.results import CheckResult, Location, Report

if TYPE_CHECKING:
    import torch

HELP = "load a previous release's model artifact in today's serving path (ONNX), score it on the golden suites"
STATE_KEYS = ("model", "state_dict", "model_state_dict")  # where checkpoints usually keep the model's weights
DEFAULT_ATOL, DEFAULT_RTOL = 1e-4, 1e-3  # golden's


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to",
        metavar="REF",
        help="the release to roll back to, a git tag or revision (default: [tool.ci-checks.rollback] to, else the "
        "latest tag matching tag-pattern before HEAD)",
    )
    parser.add_argument(
        "--artifact",
        metavar="PATH",
        help="the served model artifact, relative to the working directory, as it is tracked in git or DVC "
        "(default: [tool.ci-checks.rollback] artifact, else [tool.ci-checks.golden] weights)",
    )
    parser.add_argument(
        "--build",
        metavar="COMMAND",
        help="when the release's artifact is in neither git nor DVC's cache or remote, rebuild it by running "
        "COMMAND (e.g. 'dvc repro train') in a git worktree of the release, and say so (default: "
        "[tool.ci-checks.rollback] build, else none: a missing artifact fails)",
    )
    add_spec_option(parser)
    parser.add_argument(
        "--atol",
        type=float,
        help="absolute tolerance on the golden suites (default: the release's own, [tool.ci-checks.rollback] or "
        "[tool.ci-checks.golden] atol at its tag, else 1e-4)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        help="relative tolerance on the golden suites (default: the release's own, at its tag, else 1e-3)",
    )
    add_results_options(parser)
    add_config_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


@dataclass
class Drill:
    """What the drill needs, resolved from the command line and [tool.ci-checks]: paths relative to the git top."""

    top: str
    ref: str
    sha: str
    artifact: str
    suites: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (inputs, recording)
    atol: float = 1e-4
    rtol: float = 1e-3
    exporter: str = "torchscript"
    opset: int | None = None
    timeout_s: float = 600.0
    project: str = ""  # the pyproject.toml's folder, relative to top ("" at the top)
    build: str | None = None
    recorded_with: str | None = None  # the weights the release recorded its golden outputs with


def run(args: argparse.Namespace) -> int:
    import math

    from ci_checks.commands.golden import check_suite_name, recording_path
    from ci_checks.config import validate_section

    config, path = project_config(args)
    settings = config.get("rollback") or validate_section("rollback")
    golden = config.get("golden") or validate_section("golden")
    spec = spec_ref(args, config, path)
    home = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    top = _git.toplevel(home, hint="the rollback drill reads the release from git; run it inside the repository")

    def in_repo(p: str, anchor: str, what: str) -> str:
        full = os.path.normpath(os.path.join(anchor, p))
        rel = os.path.relpath(full, top)
        if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
            raise UserError(f"{what} {p!r} is outside the git repository {top}; name a file inside it")
        return rel.replace(os.sep, "/")

    if args.artifact:
        artifact = in_repo(args.artifact, os.getcwd(), "--artifact")
    elif settings.get("artifact") or golden.get("weights"):
        artifact = in_repo(str(settings.get("artifact") or golden["weights"]), home, "the rollback artifact")
    else:
        raise UserError(
            "no model artifact to roll back: pass --artifact PATH or set artifact under [tool.ci-checks.rollback]"
            + (f" in {path}" if path else "")
        )
    for option, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        if value is not None and not 0 <= value < math.inf:
            raise UserError(f"{option} must be a finite number at least 0, got {value!r}")
    suites: dict[str, tuple[str, str]] = {}
    for name, inputs in dict(golden["suites"]).items():
        check_suite_name(name)
        suites[name] = (
            in_repo(str(inputs), home, f"golden suite {name!r}"),
            in_repo(recording_path(str(golden["dir"]), name), home, f"golden recording of {name!r}"),
        )
    ref = args.to or settings.get("to") or previous_tag(top, str(settings.get("tag-pattern") or "v*"))
    sha = _git.rev_parse(top, ref)
    if sha is None:
        raise UserError(f"--to {ref!r}: no such commit, tag or branch in {top}; fetch the tags (git fetch --tags)")
    project = in_repo(".", home, "the project folder")
    project = "" if project == "." else project
    # The release is judged by its own tolerances, as it recorded them (today's change cannot loosen them); the
    # command line, which the workflow sets, overrides them.
    released = config_at(top, sha, project)
    drill = Drill(
        top=top,
        ref=ref,
        sha=sha,
        artifact=artifact,
        suites=suites,
        atol=args.atol if args.atol is not None else tolerance(released, "atol", DEFAULT_ATOL),
        rtol=args.rtol if args.rtol is not None else tolerance(released, "rtol", DEFAULT_RTOL),
        exporter=str(settings.get("exporter") or "torchscript"),
        opset=settings.get("opset"),
        timeout_s=float(settings.get("timeout-minutes") or 10) * 60,
        project=project,
        build=args.build or settings.get("build"),
        recorded_with=recorded_with(released, project),
    )
    if drill.build is not None:
        import shlex

        try:
            if not shlex.split(drill.build):
                raise ValueError("empty")
        except ValueError as e:
            raise UserError(f"--build {drill.build!r}: not a command line ({e}); pass e.g. 'dvc repro train'") from None
    log: Callable[[str], None] = (lambda _m: None) if args.quiet else _stderr
    return emit_results(rollback_drill(spec, drill, log=log), args, config)


def _stderr(message: str) -> None:
    print(f"rollback: {message}", file=sys.stderr, flush=True)


def previous_tag(top: str, pattern: str) -> str:
    """The latest tag matching pattern reachable from HEAD, not counting HEAD's own tags (the release being made)."""
    own = _git.run(["tag", "--points-at", "HEAD", "--list", pattern], top, check=False).stdout.split()
    out = _git.run(
        ["describe", "--tags", "--abbrev=0", "--match", pattern, *[f"--exclude={t}" for t in own], "HEAD"],
        top,
        check=False,
    )
    tag = out.stdout.strip()
    if out.returncode != 0 or not tag:
        raise UserError(
            f"no earlier release tag matching {pattern!r} before HEAD in {top}; pass --to REF (fetch the tags "
            "first in a shallow clone: git fetch --tags)"
        )
    return tag


# ---------------------------------------------------------------- the release's files


class Missing(Exception):
    """A file of the release cannot be read at its revision: why, in one line."""


def in_git(top: str, sha: str, path: str) -> bool:
    out = _git.run(["cat-file", "-t", f"{sha}:{path}"], top, check=False)
    return out.returncode == 0 and out.stdout.strip() == "blob"


def dvc_tracked(drill: Drill, path: str) -> bool:
    """Whether path is a DVC output at the release: a PATH.dvc file, or an out of a dvc.lock in a folder above it."""
    import yaml

    if in_git(drill.top, drill.sha, path + ".dvc"):
        return True
    parts = path.split("/")
    for i in range(len(parts) - 1, -1, -1):
        folder = "/".join(parts[:i])
        lock = f"{folder}/dvc.lock" if folder else "dvc.lock"
        if not in_git(drill.top, drill.sha, lock):
            continue
        text = _git.run(["cat-file", "blob", f"{drill.sha}:{lock}"], drill.top, check=False).stdout
        try:
            stages = (yaml.safe_load(text) or {}).get("stages") or {}
            outs = {o.get("path") for st in stages.values() for o in (st.get("outs") or []) if isinstance(o, dict)}
        except (yaml.YAMLError, AttributeError, TypeError):
            continue
        if "/".join(parts[i:]) in outs:
            return True
    return False


def fetch(drill: Drill, path: str, dest: str) -> str:
    """Write the release's file to dest: from git when it is committed, else from DVC. Return where it came from."""
    if in_git(drill.top, drill.sha, path):
        proc = _git.popen(["cat-file", "blob", f"{drill.sha}:{path}"], drill.top)
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdin.close()
        with open(dest, "wb") as fh:
            shutil.copyfileobj(proc.stdout, fh)
        proc.stdout.close()
        if proc.wait() != 0:
            raise Missing(f"git could not read {path} at {drill.ref}")
        return "git"
    if not dvc_tracked(drill, path):
        raise Missing(f"{path} is neither committed to git nor a DVC output (dvc.lock, .dvc file) at {drill.ref}")
    if _dvc.dvc_command() is None:
        raise Missing(f"{path} is a DVC output at {drill.ref}, and DVC is not installed to fetch it; {_dvc.INSTALL}")
    out = _dvc.run(
        ["get", drill.top, path, "--rev", drill.sha, "-o", dest, "--force"],
        drill.top,
        why="the artifact is a DVC output",
        timeout=drill.timeout_s,
    )
    if out.returncode != 0 or not os.path.isfile(dest):
        lines = [ln.strip() for ln in (out.stderr + "\n" + out.stdout).splitlines() if ln.strip().startswith("ERROR")]
        why = (lines[0] if lines else _dvc.last_line(out)).removeprefix("ERROR: ").removeprefix("unexpected error - ")
        raise Missing(
            f"{path} is a DVC output at {drill.ref} but DVC cannot fetch its data ({why[:200]}): it is neither in the "
            "DVC cache nor on the remote; push it (dvc push) when releasing, so the release can be rolled back"
        )
    return "dvc"


def build(drill: Drill, dest: str) -> str:
    """Rebuild the release's artifact: run drill.build in a git worktree of the release, copy the artifact out."""
    import shlex
    import subprocess

    assert drill.build is not None
    folder = tempfile.mkdtemp(prefix="ci-checks-rollback-worktree-")
    tree = os.path.join(folder, "release")
    try:
        _git.output(["worktree", "add", "--detach", tree, drill.sha], drill.top)
        cwd = os.path.join(tree, *drill.project.split("/")) if drill.project else tree
        from ci_checks.commands.rerun import stop_group

        try:
            # its own process group: on a timeout or Ctrl-C, dvc, the stage and the training script all stop
            proc = subprocess.Popen(
                shlex.split(drill.build),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
                # the environment ci-checks runs in comes first: its python and dvc, as in an activated venv
                env={
                    **os.environ,
                    **_dvc.ENV,
                    "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
                },
            )
        except OSError as e:
            raise UserError(
                f"--build {drill.build!r}: cannot start it ({e.strerror or e}); pass a command on PATH"
            ) from None
        try:
            output, _ = proc.communicate(timeout=drill.timeout_s)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            raise Missing(f"`{drill.build}` did not finish within {drill.timeout_s:g} s at {drill.ref}") from None
        except BaseException:
            stop_group(proc)
            raise
        built = os.path.join(tree, *drill.artifact.split("/"))
        if proc.returncode != 0:
            lines = [ln for ln in output.splitlines() if ln.strip()]
            why = lines[-1].strip()[:200] if lines else f"exit code {proc.returncode}"
            raise Missing(f"rebuilding it with `{drill.build}` at {drill.ref} failed ({why})")
        if not os.path.isfile(built):
            raise Missing(f"`{drill.build}` at {drill.ref} did not write {drill.artifact}")
        shutil.copyfile(built, dest)
        return "build"
    finally:
        with signals_deferred():
            _git.remove_worktree(drill.top, tree)
            shutil.rmtree(folder, ignore_errors=True)


def config_at(top: str, sha: str, project: str) -> dict[str, Any]:
    """[tool.ci-checks] of the release, read as it wrote it (never validated against today's schema); {} if none."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    pyproject = f"{project}/pyproject.toml" if project else "pyproject.toml"
    out = _git.run(["cat-file", "blob", f"{sha}:{pyproject}"], top, check=False)
    if out.returncode != 0:
        return {}
    try:
        table = tomllib.loads(out.stdout).get("tool", {}).get("ci-checks", {})
    except (tomllib.TOMLDecodeError, AttributeError):
        return {}
    return dict(table) if isinstance(table, dict) else {}


def _table(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name)
    return value if isinstance(value, Mapping) else {}


def tolerance(released: Mapping[str, Any], key: str, default: float) -> float:
    """The release's own tolerance: [tool.ci-checks.rollback], else [tool.ci-checks.golden], at its tag."""
    for table in (_table(released, "rollback"), _table(released, "golden")):
        value = table.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf"):
            return float(value)
    return default


def recorded_with(released: Mapping[str, Any], project: str) -> str | None:
    """The weights the release recorded its golden outputs with (relative to the top), None when it set none."""
    weights = _table(released, "golden").get("weights")
    if not isinstance(weights, str) or not weights:
        return None
    return os.path.normpath(os.path.join(project, weights)).replace(os.sep, "/")


# ---------------------------------------------------------------- loading into today's model


def state_dict_of(obj: Any) -> dict[str, Any] | None:
    """The model weights inside what torch.load returned: a module, a state_dict or a checkpoint holding one."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict())
    if isinstance(obj, Mapping):
        for key in STATE_KEYS:
            if isinstance(obj.get(key), Mapping):
                return dict(obj[key])
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    return None


def fit_problems(model: torch.nn.Module, state: Mapping[str, Any]) -> list[str]:
    """What keeps the release's weights out of today's model: missing and unexpected keys, changed shapes."""
    today = model.state_dict()
    missing = [k for k in today if k not in state]
    unexpected = [k for k in state if k not in today]
    shapes = [
        f"{k} {tuple(state[k].shape)} -> {tuple(today[k].shape)}"
        for k in today
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(today[k].shape)
    ]

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

    problems = []
    if missing:
        problems.append(f"today's model has {len(missing)} key(s) the release lacks ({few(missing)})")
    if unexpected:
        problems.append(f"the release has {len(unexpected)} key(s) today's model lacks ({few(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shape(s) changed ({few(shapes)})")
    return problems


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:240]}"


# ---------------------------------------------------------------- the drill


def rollback_drill(spec_ref: Any, drill: Drill, *, log: Callable[[str], None] = lambda _m: None) -> Report:
    """Fetch the release's artifact, load it in today's serving path, score it on the golden suites, time it."""
    report = Report(
        "rollback",
        subject={
            "to": drill.ref,
            "sha": drill.sha,
            "artifact": drill.artifact,
            "spec": spec_ref if isinstance(spec_ref, str) else "TrainingSpec",
            "atol": drill.atol,
            "rtol": drill.rtol,
        },
    )
    work = tempfile.mkdtemp(prefix="ci-checks-rollback-")
    try:
        _drill(spec_ref, drill, report, work, log)
    finally:
        with signals_deferred():
            shutil.rmtree(work, ignore_errors=True)
    return report


def _drill(spec_ref: Any, drill: Drill, report: Report, work: str, log: Callable[[str], None]) -> None:
    artifact = CheckResult("rollback-artifact")
    load = CheckResult("rollback-load")
    serve = CheckResult("rollback-serve")
    report.checks += [artifact, load, serve]
    timings: dict[str, float] = {}
    local = os.path.join(work, "artifact" + (".onnx" if drill.artifact.endswith(".onnx") else ".pt"))
    log(f"fetching {drill.artifact} at {drill.ref} ({drill.sha[:12]})")
    start = time.perf_counter()
    try:
        try:
            source = fetch(drill, drill.artifact, local)
        except Missing as e:
            if not drill.build:
                raise
            log(f"{e}; rebuilding it with `{drill.build}` in a worktree of {drill.ref}")
            source = build(drill, local)
            artifact.add(
                "notice",
                f"rollback-artifact: {e}; so it was rebuilt with `{drill.build}` at {drill.ref} - the drill ran on "
                "the release's code, params and data, not on the bytes it served",
            )
    except Missing as e:
        artifact.add(
            "error",
            f"rollback-artifact: the release {drill.ref} cannot be rolled back: {e}",
            artifact=drill.artifact,
            ref=drill.ref,
        )
        artifact.summary = f"{drill.artifact} missing at {drill.ref}"
        _skip_rest(report, [load, serve], f"no artifact of {drill.ref}")
        return
    timings["fetch_s"] = time.perf_counter() - start
    artifact.duration_s = timings["fetch_s"]
    size = os.path.getsize(local)
    artifact.figures.update(source=source, size_bytes=size)
    artifact.summary = f"{drill.artifact} at {drill.ref} from {source} ({size / 1024:.0f} KiB)"

    log("loading it in today's serving path (ONNX, onnxruntime)")
    served = _load(spec_ref, drill, local, work, load, timings)
    if served is None:
        _skip_rest(report, [serve], "the artifact does not load")
        return
    session, feed, example, reference = served
    start = time.perf_counter()
    try:
        first = list(session.run(None, feed(example)))
    except Exception as e:
        serve.add(
            "error",
            f"rollback-serve: onnxruntime cannot run the release's model on today's batch ({_first_line(e)}) - "
            "today's inputs no longer fit it (a changed input shape, dtype or feature count)",
        )
        serve.summary = "first inference failed"
        return
    timings["first_inference_s"] = time.perf_counter() - start
    if reference is not None:
        import numpy as np

        torch_out = [t.detach().cpu().float().numpy() for t in reference]
        ort_out = [np.asarray(a, dtype=np.float32) for a in first]
        same_shapes = len(torch_out) == len(ort_out) and all(t.shape == o.shape for t, o in zip(torch_out, ort_out))
        max_abs = (
            max((float(np.abs(t - o).max()) if t.size else 0.0 for t, o in zip(torch_out, ort_out)), default=0.0)
            if same_shapes
            else float("inf")
        )
        serve.figures["max_abs_diff_vs_pytorch"] = max_abs
        if not same_shapes or not all(
            np.allclose(o, t, atol=drill.atol, rtol=drill.rtol) for t, o in zip(torch_out, ort_out)
        ):
            serve.add(
                "error",
                f"rollback-serve: the exported release model differs from PyTorch eval mode by {max_abs:.3g} "
                f"(atol {drill.atol}, rtol {drill.rtol}) - today's export path does not serve this model faithfully",
            )
    switch = sum(timings.values())
    serve.figures.update(switch_seconds=round(switch, 4), **{k: round(v, 4) for k, v in timings.items()})
    serve.summary = (
        f"served by onnxruntime; switch took {switch:.2f}s ({'rebuild' if source == 'build' else 'fetch'} "
        f"{timings['fetch_s']:.2f}s, load "
        f"{timings['load_s']:.2f}s, first inference {timings['first_inference_s'] * 1000:.1f} ms; not judged)"
    )
    report.subject["switch_seconds"] = round(switch, 4)

    if drill.suites and drill.recorded_with != drill.artifact:
        what = f"its golden weights are {drill.recorded_with}" if drill.recorded_with else "it set no golden weights"
        for name in drill.suites:
            result = CheckResult(f"rollback-golden {name}", skipped=True)
            result.summary = f"not run: {drill.ref}'s recordings were not made with {drill.artifact}"
            result.add(
                "notice",
                f"rollback-golden {name}: skipped, the release's recordings were not made with its artifact ({what} "
                f"in [tool.ci-checks.golden] at {drill.ref}); set weights = the artifact there to score releases",
                suite=name,
            )
            report.checks.append(result)
        return
    for name, (inputs_path, recording) in drill.suites.items():
        log(f"golden suite {name}")
        report.checks.append(_golden(drill, name, inputs_path, recording, session, feed, work))


def _skip_rest(report: Report, results: list[CheckResult], why: str) -> None:
    for result in results:
        result.skipped = True
        result.summary = f"not run: {why}"


def _load(
    spec_ref: Any, drill: Drill, local: str, work: str, load: CheckResult, timings: dict[str, float]
) -> tuple[Any, Callable[[Any], dict[str, Any]], Any, list[Any] | None] | None:
    """The release's model as an onnxruntime session, how to feed it, today's example inputs and the PyTorch
    reference outputs on them (None for an ONNX artifact); None (with a finding) when it does not load."""
    import torch

    from ci_checks.commands.export_parity import export_onnx, serving_model
    from ci_checks.engine.tree import flat_inputs, output_tensors

    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("the rollback drill serves the model with onnxruntime: pip install 'ci-checks[onnx]'") from None
    from ci_checks.engine.usercode import UserCodeError

    try:
        harness, model = serving_model(spec_ref, None)  # today's model class, built as the spec builds it
    except UserCodeError as e:
        load.add(
            "error",
            f"rollback-load: today's model cannot be built from the spec, so no release can be served: {e}",
            location=e.location if isinstance(e.location, Location) else None,
        )
        load.summary = "today's model cannot be built"
        return None
    names, example = flat_inputs(harness.inputs, command="rollback")
    start = time.perf_counter()  # the switch: reading the weights, exporting, starting the session
    onnx_path = local
    reference: list[Any] | None = None
    if not local.endswith(".onnx"):
        try:
            obj = torch.load(local, map_location="cpu", weights_only=False)
        except Exception as e:
            load.add(
                "error",
                f"rollback-load: {drill.artifact} at {drill.ref} cannot be read with torch.load ({_first_line(e)}) "
                "- the file is not a PyTorch checkpoint, or its classes no longer import",
            )
            load.summary = "torch.load failed"
            return None
        state = state_dict_of(obj)
        if state is None:
            load.add(
                "error",
                f"rollback-load: {drill.artifact} at {drill.ref} holds {type(obj).__name__}, not a state_dict, a "
                f"module or a checkpoint with one of {', '.join(STATE_KEYS)}",
            )
            load.summary = "no weights found"
            return None
        problems = fit_problems(model, state)
        if not problems:
            try:
                model.load_state_dict(state)
            except Exception as e:
                problems = [_first_line(e)]
        if problems:
            load.add(
                "error",
                f"rollback-load: the weights of {drill.ref} no longer fit today's model class: "
                + "; ".join(problems)
                + " - a layer was renamed, added or resized since the release; keep the old names (or map them in "
                "the model's load_state_dict) so the release can still be served",
                problems=problems,
            )
            load.summary = "state_dict does not fit today's model"
            return None
        model.eval()
        try:
            with torch.no_grad():
                reference = output_tensors(harness.forward(model, harness.inputs))
        except Exception as e:
            load.add(
                "error",
                f"rollback-load: today's model with the weights of {drill.ref} fails on the spec's batch "
                f"({_first_line(e)}) - today's forward no longer runs the release's model",
            )
            load.summary = "today's forward fails with the release's weights"
            return None
        onnx_path = os.path.join(work, "release.onnx")
        try:
            export_onnx(
                model,
                names,
                example,
                onnx_path,
                batch_dim=harness.spec.batch_dim,
                n_outputs=len(reference),
                exporter=drill.exporter,
                opset=drill.opset,
            )
        except Exception as e:
            load.add(
                "error",
                f"rollback-load: today's export path cannot export the release's model to ONNX ({_first_line(e)}) "
                "- an operator without an ONNX mapping, or an opset the exporter no longer supports",
            )
            load.summary = "ONNX export failed"
            return None
    try:
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    except Exception as e:
        load.add(
            "error",
            f"rollback-load: onnxruntime {ort.__version__} cannot load the release's model ({_first_line(e)}) - "
            "an ONNX opset or operator this onnxruntime does not support",
        )
        load.summary = "onnxruntime cannot load it"
        return None
    timings["load_s"] = time.perf_counter() - start
    load.duration_s = timings["load_s"]
    inputs = session.get_inputs()
    feed_names = [i.name for i in inputs]

    def feed(value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return {n: value[n].cpu().numpy() if hasattr(value[n], "cpu") else value[n] for n in feed_names}
        xs = value if isinstance(value, (list, tuple)) else [value]
        return {n: x.cpu().numpy() if hasattr(x, "cpu") else x for n, x in zip(feed_names, xs)}

    example_feed: Any = dict(zip(names, example)) if isinstance(harness.inputs, dict) else example
    load.figures.update(
        inputs=[f"{i.name} {i.shape} {i.type}" for i in inputs], onnxruntime=ort.__version__, torch=torch.__version__
    )
    load.summary = (
        f"loads in today's model class and onnxruntime {ort.__version__}"
        if reference is not None
        else f"ONNX model loads in onnxruntime {ort.__version__}"
    )
    return session, feed, example_feed, reference


def _golden(
    drill: Drill,
    name: str,
    inputs_path: str,
    recording: str,
    session: Any,
    feed: Callable[[Any], dict[str, Any]],
    work: str,
) -> CheckResult:
    """The release's outputs on a golden suite, served today, against what the release recorded."""
    import numpy as np
    import torch

    from ci_checks.engine.tree import flat_inputs

    result = CheckResult(f"rollback-golden {name}")
    local_inputs = os.path.join(work, f"{name}.inputs.pt")
    local_recording = os.path.join(work, f"{name}.expected.npz")
    try:
        fetch(drill, inputs_path, local_inputs)
        fetch(drill, recording, local_recording)
    except Missing as e:
        result.skipped = True
        result.summary = f"not run: the release has no recording of this suite ({e})"
        result.add("notice", f"rollback-golden {name}: skipped, {e}", suite=name)
        return result
    try:
        loaded = torch.load(local_inputs, map_location="cpu", weights_only=False)
        names, xs = flat_inputs(loaded, command="rollback")
        with np.load(local_recording, allow_pickle=False) as data:
            expected = [data[k] for k in sorted(data.files, key=lambda k: int(k[4:]) if k[4:].isdigit() else 0)]
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"{recording} or {inputs_path} at {drill.ref}: not golden inputs and a recording of ci-checks golden "
            f"({_first_line(e)}); record the suite again at that release"
        ) from None
    value: Any = dict(zip(names, xs)) if isinstance(loaded, dict) else xs
    try:
        outputs = [np.asarray(o, dtype=np.float32) for o in session.run(None, feed(value))]
    except Exception as e:
        result.add(
            "error",
            f"rollback-golden {name}: onnxruntime cannot run the release's model on the suite's inputs "
            f"({_first_line(e)}) - the inputs recorded at {drill.ref} no longer fit the served model",
            suite=name,
        )
        result.summary = "inference failed"
        return result
    if len(expected) != len(outputs) or any(e.shape != o.shape for e, o in zip(expected, outputs)):
        result.add(
            "error",
            f"rollback-golden {name}: the served model gives outputs of shapes {[o.shape for o in outputs]}, the "
            f"release recorded {[e.shape for e in expected]} - today's serving path changed the model's outputs",
            suite=name,
        )
        result.summary = "output shapes changed"
        return result
    drift = max(float(np.abs(e - o).max()) if e.size else 0.0 for e, o in zip(expected, outputs))
    changed = total = 0
    if expected[0].ndim >= 2 and expected[0].shape[-1] > 1:
        changed = int((expected[0].argmax(-1) != outputs[0].argmax(-1)).sum())
        total = int(np.prod(expected[0].shape[:-1]))
    result.figures.update(max_drift=drift, changed_predictions=changed, predictions=total, suite=name)
    result.summary = f"max drift {drift:.3g}" + (f", {changed}/{total} predictions changed class" if total else "")
    if not all(np.allclose(o, e, atol=drill.atol, rtol=drill.rtol) for e, o in zip(expected, outputs)):
        result.add(
            "error",
            f"rollback-golden {name}: served today, the release's model drifts from the outputs it recorded (max "
            f"{drift:.3g}, atol {drill.atol}, rtol {drill.rtol})"
            + (f"; {changed} of {total} predictions changed class" if total else "")
            + " - today's serving path (preprocessing, model code, export) changed what the release computes",
            suite=name,
            max_drift=drift,
            changed=changed,
        )
    return result
