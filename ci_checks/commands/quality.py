"""quality: per-slice metrics, behavioural tests, calibration and hard-example suites of the model under test,
maybe against the base revision's model (--base), or mine the hardest examples into a named suite (--mine N)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ci_checks.commands import add_config_option, add_results_options, emit_results, project_config, spec_ref

HELP = "model quality suites: slices, behavioural tests, calibration and hard examples, against the base (--base)"

DEFAULT_THREADS = 1  # small models; with --base the base's evaluation runs alongside on the other core
MAX_THREADS = 256

# Keys of [tool.ci-checks.quality] that decide pass or fail: read from the base revision when comparing.
GATE_KEYS = (
    "min",
    "max-failure-rate",
    "failure-rates",
    "max-ece",
    "target-precision",
    "min-coverage",
    "min-slice-size",
    "alpha",
    "abs-tol",
    "rate-tol",
    "fail-on",
    "bootstrap",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spec",
        help="the quality spec, FILE.py:FUNCTION or package.module:FUNCTION (default: [tool.ci-checks.quality] "
        "spec, relative to that pyproject.toml)",
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="also run the base revision's quality spec (in a temporary git worktree) and compare; the thresholds "
        "then come from the base's [tool.ci-checks.quality] (default: [tool.ci-checks.quality] base, else no "
        "comparison)",
    )
    parser.add_argument(
        "--mine",
        type=int,
        metavar="N",
        help="write the N highest-loss examples of the evaluation set as a named suite instead of judging",
    )
    parser.add_argument("--suite-name", default="hard-examples", help="name of the mined suite (default: %(default)s)")
    parser.add_argument(
        "--failure",
        default="",
        help="what the mined examples have in common, e.g. 'night time' (default: none)",
    )
    parser.add_argument(
        "--suites-dir",
        metavar="DIR",
        help="folder of the named suites (default: [tool.ci-checks.quality] suites-dir, else golden)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        metavar="N",
        help="torch intra-op threads of this change's evaluation and of the base's (default: %(default)s)",
    )
    parser.add_argument(
        "--plots-dir",
        metavar="DIR",
        help="write the reliability diagram PNG into DIR (needs matplotlib; default: none)",
    )
    add_results_options(parser)
    add_config_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _anchored(path: str, config_path: str | None) -> str:
    if os.path.isabs(path) or not config_path:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), path)


def run(args: argparse.Namespace) -> int:
    from ci_checks._errors import UserError
    from ci_checks.config import validate_section
    from ci_checks.render import plain

    config, config_path = project_config(args)
    settings = config.get("quality") or validate_section("quality")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"ci-checks quality: {plain(message)}", file=sys.stderr)

    if not 1 <= args.threads <= MAX_THREADS:
        raise UserError(f"--threads must be between 1 and {MAX_THREADS}, got {args.threads}")
    ref = spec_ref(args, settings, config_path, what="quality spec", table="[tool.ci-checks.quality]")
    suites_dir = args.suites_dir or _anchored(str(settings["suites-dir"]), config_path)
    if args.mine is not None:
        from ci_checks.commands.golden import check_suite_name

        if args.base:
            raise UserError("--mine and --base do not go together: mine on this change's model, then compare")
        if args.mine < 1:
            raise UserError(f"--mine must be at least 1, got {args.mine}")
        check_suite_name(args.suite_name)
        if os.path.exists(suites_dir) and not os.path.isdir(suites_dir):
            raise UserError(f"{suites_dir}: is a file, not the suites folder; set suites-dir or pass --suites-dir")
        report = _mine(args, ref, suites_dir, log)
    else:
        try:
            report = quality_check(
                ref,
                settings,
                suites_dir=suites_dir,
                base=args.base or settings.get("base"),
                config_path=config_path,
                plots_dir=args.plots_dir,
                threads=args.threads,
                quiet=args.quiet,
                log=log,
            )
        except UserError as e:
            raise UserError(plain(str(e))) from None
    return emit_results(report, args, config)


def _evaluate(ref: str, suites_dir: str | None, log: Callable[[str], None]) -> tuple[Any, Any]:
    from ci_checks._errors import UserError
    from ci_checks.engine.usercode import UserCodeError
    from ci_checks.quality.evaluate import evaluate
    from ci_checks.quality.spec import load_quality_spec

    spec = load_quality_spec(ref)
    try:
        return spec, evaluate(spec, suites_dir=suites_dir, log=log)
    except UserCodeError as e:
        raise UserError(f"{spec.where}: {e}") from None


def _mine(args: argparse.Namespace, ref: str, suites_dir: str, log: Callable[[str], None]) -> Any:
    from ci_checks.quality.evaluate import dataset_of
    from ci_checks.quality.mine import mine
    from ci_checks.results import Report

    import torch

    torch.set_num_threads(args.threads)
    spec, evaluation = _evaluate(ref, None, log)
    result = mine(
        evaluation,
        dataset_of(spec),
        args.mine,
        name=args.suite_name,
        directory=suites_dir,
        failure=args.failure,
        source=ref,
    )
    log(
        f"suite '{args.suite_name}' written; `ci-checks quality` judges it from now on, and `ci-checks golden` "
        f"keeps its outputs once {args.suite_name} = \"{os.path.join(suites_dir, args.suite_name + '.pt')}\" is "
        "under [tool.ci-checks.golden] suites (then run ci-checks golden --update)"
    )
    return Report("quality", checks=[result], subject={"spec": ref, "mined": args.suite_name})


def quality_check(
    ref: str,
    settings: Mapping[str, Any],
    *,
    suites_dir: str | None,
    base: str | None = None,
    config_path: str | None = None,
    plots_dir: str | None = None,
    threads: int = DEFAULT_THREADS,
    quiet: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> Any:
    """Run the quality suites of the spec at ref (against the base revision when base is given): the Report."""
    import time

    import contextlib

    from ci_checks.quality.base import base_running, dvc_cache, open_base
    from ci_checks.quality.suites import judge
    from ci_checks.results import CheckResult, Kind, Report

    started = time.monotonic()
    policy = dict(settings)
    subject: dict[str, Any] = {"spec": ref, "policy": {"source": "the working tree"}}
    side = None
    repo = None
    if base:
        side, repo = open_base(base, config_path=config_path, fetch_depth=int(settings["fetch-depth"]), log=log)
        base_settings = (side.config or {}).get("quality") if side.config is not None else None
        if base_settings:
            changes = [
                {"key": f"quality.{k}", "base": base_settings.get(k), "head": settings.get(k)}
                for k in GATE_KEYS
                if base_settings.get(k) != settings.get(k)
            ]
            policy.update({k: base_settings[k] for k in GATE_KEYS})
            subject["policy"] = {"source": f"{side.name} ({(side.sha or '')[:7]})", "changes": changes}
        else:
            subject["policy"] = {
                "source": "the working tree",
                "note": f"{side.name} has no [tool.ci-checks.quality]: this change's thresholds judge it",
            }
    _check_policy(policy)
    import torch

    torch.set_num_threads(threads)
    base_eval = None
    with contextlib.ExitStack() as stack:
        finish = None
        if side is not None and repo is not None:
            # The base's model is evaluated in a child process while this change's is evaluated here.
            project = os.path.dirname(os.path.abspath(config_path)) if config_path else os.getcwd()
            running = base_running(
                side,
                repo,
                settings=(side.config or {}).get("quality") or {},
                head_dvc_cache=dvc_cache(project),
                threads=threads,
                quiet=quiet,
                log=log,
            )
            finish = stack.enter_context(running)
        spec, head = _evaluate(ref, suites_dir, log)
        if finish is not None and side is not None:
            log(f"waiting for {side.name}'s quality suites")
            finish()
            base_eval = side.evaluation
            subject["base"] = {"ref": base, "name": side.name, "sha": side.sha, "note": side.note}
    results: list[CheckResult] = judge(head, base_eval, policy, base_name=side.name if side else "main")
    if side is not None and base_eval is None:
        none = CheckResult("quality base", figures={"kind": Kind.QUALITY.value, "suite": "base"})
        none.summary = f"no baseline: {side.note}"
        none.add("notice", f"not compared with {side.name}: {side.note}", reason="no-baseline")
        results.append(none)
    if plots_dir:
        from ci_checks.quality import metrics as qm
        from ci_checks.quality.plots import reliability_png

        sides = {"head": qm.reliability(head.probs, head.targets)}
        if base_eval is not None:
            sides = {"base": qm.reliability(base_eval.probs, base_eval.targets), **sides}
        png = reliability_png(sides, os.path.join(plots_dir, "quality-reliability.png"))
        for r in results:
            if r.figures.get("suite") == "calibration":
                r.figures["plot"] = png
    elapsed = time.monotonic() - started
    for r in results:
        r.duration_s = elapsed / max(1, len(results))
    subject.update(examples=len(head.ids), classes=head.num_classes, metrics=list(head.metrics))
    return Report("quality", checks=results, subject=subject)


def _check_policy(policy: Mapping[str, Any]) -> None:
    from ci_checks._errors import UserError
    from ci_checks.quality.spec import METRICS

    for key in ("target-precision", "min-coverage"):
        value = policy.get(key)
        if value is not None and not 0 <= float(value) <= 1:
            raise UserError(f"[tool.ci-checks.quality] {key} must be a share in [0, 1], got {value!r}")
    for name in policy.get("min") or {}:
        if name not in METRICS:
            from ci_checks.config import closest

            hint = closest(name, list(METRICS), "metrics")
            raise UserError(f"[tool.ci-checks.quality] min names unknown metric {name!r} ({hint})")


def main(argv: Sequence[str] | None = None) -> int:
    from ci_checks.main import main as cli

    return cli(["quality", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
