"""Metric noise: how often a policy cries wolf on seed-to-seed noise, and how often it catches a real regression.

Simulates an accuracy of 0.90 measured with seed noise (sigma 0.5 points, 5 seeds per side), then decides
"regressed or not" with ci-checks' own verdict code (ci_checks.compare.decide, the function the command uses)
and with a fixed-ratio threshold like github-action-benchmark's alert-threshold. Prints the false-alarm rate
when nothing changed and the detection rate for true regressions of 1, 2 and 4 sigma, then the same policies on
a metric twice as noisy (the thresholds do not know that). Last, times `ci-checks compare` on a temporary git
repository with 200 metrics, with DVC's own start-up measured separately.

    python benchmarks/metric_noise/run.py [--trials 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout

from ci_checks.compare import Policy, compare, decide, policy_for

MEAN = 0.90
SIGMA = 0.005  # 0.5 accuracy points
SEEDS = 5
SHIFTS = (0.0, 1.0, 2.0, 4.0)  # true regressions, in sigma
TARGET_FALSE_ALARMS, TARGET_DETECTION = 0.05, 0.90

Rule = Callable[[list[float], list[float]], bool]  # (base samples, head samples) -> alarm


def policy(**overrides: object) -> Policy:
    fields: dict[str, object] = dict(
        direction="higher", direction_guessed=False, abs_tol=None, rel_tol=0.01, required=True, test="welch", alpha=0.05
    )
    fields.update(overrides)
    return Policy(**fields)  # type: ignore[arg-type]


def ours(p: Policy, seeds: int | None = None) -> Rule:
    def rule(base: list[float], head: list[float]) -> bool:
        if seeds is not None:
            base, head = base[:seeds], head[:seeds]
        return bool(decide(base, head, p)["verdict"] == "regressed")

    return rule


def ratio(threshold: float, seeds: int | None = None) -> Rule:
    """github-action-benchmark style: alert when base/head (higher is better) exceeds 1 + threshold."""

    def rule(base: list[float], head: list[float]) -> bool:
        if seeds is not None:
            base, head = base[:seeds], head[:seeds]
        return statistics.fmean(base) / statistics.fmean(head) > 1.0 + threshold

    return rule


RULES: list[tuple[str, Rule, int, int]] = [  # name, rule, trials divisor (the bootstrap is slow), seeds per side
    ("ci-checks welch, default policy", ours(policy_for("eval.json:accuracy", {})), 1, SEEDS),
    ("ci-checks welch, rel-tol 0.01", ours(policy()), 1, SEEDS),
    ("ci-checks welch, abs-tol 0.001 (0.1 pt)", ours(policy(abs_tol=0.001, rel_tol=None)), 1, SEEDS),
    ("ci-checks welch, abs-tol 0.001, alpha 0.10", ours(policy(abs_tol=0.001, rel_tol=None, alpha=0.10)), 1, SEEDS),
    ("ci-checks bootstrap, abs-tol 0.001", ours(policy(abs_tol=0.001, rel_tol=None, test="bootstrap")), 4, SEEDS),
    ("ci-checks, 1 seed/side, default (rel-tol 0.01)", ours(policy_for("eval.json:accuracy", {}), seeds=1), 1, SEEDS),
    ("ci-checks, 1 seed/side, abs-tol 0.005", ours(policy(abs_tol=0.005, rel_tol=None), seeds=1), 1, SEEDS),
    ("ratio 0.5% on 5-seed means", ratio(0.005), 1, SEEDS),
    ("ratio 1% on 5-seed means", ratio(0.01), 1, SEEDS),
    ("ratio 2% on 5-seed means", ratio(0.02), 1, SEEDS),
    ("ratio 1% on 1 run (gh-action-benchmark)", ratio(0.01, seeds=1), 1, SEEDS),
    ("ci-checks welch, abs-tol 0.001, 6 seeds/side", ours(policy(abs_tol=0.001, rel_tol=None)), 1, 6),
    ("ci-checks welch, abs-tol 0.001, 7 seeds/side", ours(policy(abs_tol=0.001, rel_tol=None)), 1, 7),
]


def rates(rule: Rule, sigma: float, trials: int, seed: int, seeds: int = SEEDS) -> list[float]:
    """The alarm rate for each true shift (in sigma), each on its own seeded stream."""
    out = []
    for k, shift in enumerate(SHIFTS):
        rng = random.Random(seed * 1000 + k)
        alarms = 0
        for _ in range(trials):
            base = [rng.gauss(MEAN, sigma) for _ in range(seeds)]
            head = [rng.gauss(MEAN - shift * sigma, sigma) for _ in range(seeds)]
            alarms += rule(base, head)
        out.append(alarms / trials)
    return out


def simulate(trials: int, seed: int) -> None:
    for sigma, note in ((SIGMA, "the target case"), (2 * SIGMA, "a metric twice as noisy; same thresholds")):
        print(
            f"\naccuracy {MEAN:.2f}, seed noise sigma {sigma * 100:.1f} points, {SEEDS} seeds per side unless "
            f"the row says otherwise ({note})"
        )
        print(f"{'policy':<46} {'trials':>6} {'false alarms':>12} {'det 1σ':>7} {'det 2σ':>7} {'det 4σ':>7}  target")
        for name, rule, divisor, seeds in RULES:
            n = max(200, trials // divisor)
            fa, d1, d2, d4 = rates(rule, sigma, n, seed, seeds)
            meets = fa <= TARGET_FALSE_ALARMS and d2 >= TARGET_DETECTION
            print(f"{name:<46} {n:>6} {fa:>12.1%} {d1:>7.1%} {d2:>7.1%} {d4:>7.1%}  {'meets' if meets else 'misses'}")
    se = math.sqrt(0.05 * 0.95 / trials)
    print(
        f"\n(standard error of a rate near 5% with {trials} trials: {se:.1%}; near 90%: "
        f"{math.sqrt(0.09 / trials):.1%}. Target: <= {TARGET_FALSE_ALARMS:.0%} false alarms and "
        f">= {TARGET_DETECTION:.0%} detection at 2 sigma.)"
    )


# ---------------------------------------------------------------- timing


def _git(cwd: str, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _project(root: str, n_metrics: int) -> None:
    """A git repo with a dvc.yaml (metrics cache: false): 4 files of n/4 metrics, a tenth of them 5-seed lists."""
    rng = random.Random(1)
    per_file = n_metrics // 4
    files = [f"metrics/part{i}.json" for i in range(4)]
    dvc_yaml = (
        "stages:\n  evaluate:\n    cmd: python evaluate.py\n    params: [train]\n    metrics:\n"
        + "".join(f"      - {f}:\n          cache: false\n" for f in files)
        + ("    plots:\n      - plots/loss.csv:\n          cache: false\n          x: step\n          y: loss\n")
    )

    def write(shift: float, lr: float) -> None:
        os.makedirs(os.path.join(root, "metrics"), exist_ok=True)
        os.makedirs(os.path.join(root, "plots"), exist_ok=True)
        for i, f in enumerate(files):
            doc: dict[str, object] = {}
            for j in range(per_file):
                group = doc.setdefault(f"task{j % 5}", {})
                assert isinstance(group, dict)
                if j % 10 == 0:
                    group[f"accuracy_{j}"] = [round(rng.gauss(0.9 - shift, 0.005), 5) for _ in range(5)]
                else:
                    group[f"{'loss' if j % 2 else 'f1'}_{j}"] = round(rng.gauss(0.5, 0.05) - shift, 5)
            with open(os.path.join(root, f), "w") as fh:
                json.dump(doc, fh)
        with open(os.path.join(root, "plots", "loss.csv"), "w") as fh:
            fh.write("step,loss\n" + "".join(f"{s},{2.0 / (1 + s) + shift:.5f}\n" for s in range(100)))
        with open(os.path.join(root, "params.yaml"), "w") as fh:
            fh.write(f"train:\n  lr: {lr}\n  epochs: 10\n")

    _git(root, "init", "-q", "-b", "main")
    with open(os.path.join(root, "dvc.yaml"), "w") as fh:
        fh.write(dvc_yaml)
    write(0.0, 0.01)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    _git(root, "checkout", "-qb", "feature")
    write(0.002, 0.02)


def _seconds(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """First call and the median of `repeat` later calls, in seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    later = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        later.append(time.perf_counter() - start)
    return first, statistics.median(later)


def timing(n_metrics: int) -> None:
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "DVC_NO_ANALYTICS": "1",
    }
    os.environ.update(env)
    os.environ.pop("GITHUB_BASE_REF", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "repo")
        os.makedirs(root)
        _project(root, n_metrics)
        report = compare(root)
        metrics = [c for c in report.checks if c.figures.get("kind") == "metric"]
        counts = statistics.multimode([c.figures["verdict"] for c in metrics])
        print(
            f"\ncompare on a temporary git repo: {len(metrics)} metrics in 4 files from dvc.yaml "
            f"({sum(len(c.figures['head_samples']) > 1 for c in metrics)} with 5 seeds), 1 curve of 100 points, "
            f"params.yaml; most common verdict: {', '.join(counts)}"
        )
        first, median = _seconds(lambda: compare(root), 5)
        print(
            f"  compare(), in-process (git reads included, no DVC process): first {first * 1000:.0f} ms, "
            f"median of 5 {median * 1000:.0f} ms"
        )
        out = os.path.join(tmp, "compare.json")
        from ci_checks.render import render_json

        with open(out, "w") as fh:
            fh.write(render_json(report))
        try:
            from ci_checks.main import main

            md = os.path.join(tmp, "report.md")

            def run_report() -> int:
                with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                    return main(["report", out, "--output", md])

            first, median = _seconds(run_report, 5)
            print(
                f"  report on its results, in-process: first {first * 1000:.0f} ms, median of 5 {median * 1000:.0f} ms"
            )
        except Exception as e:  # noqa: BLE001 - the report command is another module; time it when it works
            print(f"  report: not timed ({type(e).__name__}: {e})")
        cli = [sys.executable, "-m", "ci_checks", "compare", "--head-dir", root, "--quiet", "--output", out]
        start = time.perf_counter()
        subprocess.run(cli, capture_output=True, check=False)
        print(
            f"  ci-checks compare as a new process (Python start-up included): "
            f"{(time.perf_counter() - start) * 1000:.0f} ms"
        )
        dvc = [sys.executable, "-m", "dvc"]
        import importlib.util

        if importlib.util.find_spec("dvc") is None:
            print("  DVC start-up: not measured (dvc is not installed)")
            return
        _git(root, "commit", "-qam", "head")  # DVC wants a clean-enough repo; `dvc init` needs git
        subprocess.run([*dvc, "init", "-q"], cwd=root, check=True, capture_output=True)
        start = time.perf_counter()
        subprocess.run([*dvc, "--version"], cwd=root, check=True, capture_output=True)
        version = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([*dvc, "metrics", "show", "--json"], cwd=root, check=True, capture_output=True)
        show = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([*dvc, "metrics", "diff", "--json", "--all", "main"], cwd=root, check=True, capture_output=True)
        diff = time.perf_counter() - start
        print(
            f"  DVC itself, measured separately (compare does not start it for cache: false metrics): "
            f"`dvc --version` {version * 1000:.0f} ms, `dvc metrics show --json` {show * 1000:.0f} ms, "
            f"`dvc metrics diff --json main` {diff * 1000:.0f} ms"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=4000, help="simulated comparisons per cell (default: 4000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--metrics", type=int, default=200, help="metrics in the timed repository (default: 200)")
    parser.add_argument("--skip-timing", action="store_true", help="only the simulation")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    simulate(args.trials, args.seed)
    print(f"(simulation: {time.perf_counter() - start:.0f} s)")
    if not args.skip_timing:
        timing(args.metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
