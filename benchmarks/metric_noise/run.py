"""Metric noise: how often compare cries wolf on seed-to-seed noise, and how often it catches a real regression.

1. One metric: an accuracy of 0.90 measured with seed noise (sigma 0.5 points, 5 seeds per side), decided with
   ci-checks' own verdict code (ci_checks.compare.decide) and with a fixed-ratio threshold like
   github-action-benchmark's alert-threshold: false alarms, and detection of true regressions of 1, 2, 4 sigma.
2. One pull request: with 1, 10, 100 and 500 metrics and no real change, how often the pull request fails, with
   the per-pull-request error control (Holm across the gating metrics) and without it (correction = "none", each
   metric alone, as ci-checks 0.1 did) in the same run; and how often anything is flagged at all.
3. Declared vs undeclared: 100 metrics, one of which truly regresses by 2 sigma; how often the pull request fails
   when that metric is declared (required = true), when nothing is declared, and when another one is.
4. A diverged seed: one seed 10 sigma off; how often it is flagged, and what the verdict says.
5. The direction vocabulary: names and the direction each is given, against ci-checks 0.1's guess.
6. Timing: `ci-checks compare` + `ci-checks report` on a temporary git repository with 500 metrics, against a
   baseline in the same run (reading the same files from git and the working tree, and diffing every key), and
   DVC's own start-up measured separately.

The simulations call the functions compare itself runs (ci_checks.compare.gate: assess, choose_gating, correct).

    python benchmarks/metric_noise/run.py [--trials 4000] [--seed 0] [--metrics 500] [--skip-timing]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout

from ci_checks.compare import Policy, compare, decide, policy_for
from ci_checks.compare.files import Metric
from ci_checks.compare.gate import Assessment, assess, choose_gating, correct
from ci_checks.compare.policy import guess_direction
from ci_checks.results import Verdict

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


# ---------------------------------------------------------------- one pull request, many metrics


def _pull_request(
    rng: random.Random,
    n: int,
    *,
    policies: dict[str, dict[str, object]] | None = None,
    shift: dict[int, float] | None = None,
    diverged: dict[int, float] | None = None,
    sigma: float = SIGMA,
) -> list[Assessment]:
    """n accuracy-like metrics of one pull request, 5 seeds per side, assessed as compare assesses them.

    shift: metric index -> true change of its mean, in sigma; diverged: metric index -> offset of its first PR seed.
    """
    out = []
    for i in range(n):
        name = f"metrics/eval.json:task{i}.accuracy"
        base = [rng.gauss(MEAN, sigma) for _ in range(SEEDS)]
        head = [rng.gauss(MEAN - (shift or {}).get(i, 0.0) * sigma, sigma) for _ in range(SEEDS)]
        if diverged and i in diverged:
            head[0] -= diverged[i] * sigma
        policy = policy_for(name, policies or {})
        out.append(assess(name, Metric(name, "m", base), Metric(name, "m", head), policy, first_run=False))
    return out


def _fails(assessments: list[Assessment], *, gate: str = "auto", correction: str = "holm") -> bool:
    """Whether compare fails the pull request: a gating metric regressed (what compare turns into an error)."""
    choose_gating(assessments, gate)
    correct(assessments, correction)
    return any(a.gating and a.verdict is Verdict.REGRESSED for a in assessments)


QUIET = (Verdict.WITHIN_NOISE, Verdict.UNCHANGED)


def per_pull_request(trials: int, seed: int) -> None:
    print(
        f"\none pull request, no real change: accuracy-like metrics, sigma {SIGMA * 100:.1f} points, {SEEDS} seeds "
        "per side, default policy (nothing declared: every metric gates)"
    )
    print(
        f"{'metrics':>7} {'trials':>6} {'fails (Holm, default)':>22} {'fails (correction none)':>24} "
        f"{'anything flagged':>17} {'diverged-seed flag':>19}"
    )
    for n in (1, 10, 100, 500):
        count = max(100, min(trials, 100_000 // n))
        rng = random.Random(seed * 7919 + n)
        holm_fails = none_fails = flagged = diverged = 0
        for _ in range(count):
            prs = _pull_request(rng, n)
            none_fails += _fails(prs, correction="none")
            holm_fails += _fails(prs)
            flagged += any(a.verdict not in QUIET for a in prs)
            diverged += any(a.diverged is not None for a in prs)
        print(
            f"{n:>7} {count:>6} {holm_fails / count:>22.1%} {none_fails / count:>24.1%} {flagged / count:>17.1%} "
            f"{diverged / count:>19.1%}"
        )
    print(
        "(fails: the pull request's exit code is 1; flagged: any metric shown as improved, regressed or changed "
        "(Benjamini-Hochberg); target: fails <= 5% for every row)"
    )


def declared_vs_undeclared(trials: int, seed: int) -> None:
    n, shift = 100, 2.0
    count = max(100, trials // 10)
    target = "metrics/eval.json:task0.accuracy"
    configs: list[tuple[str, int, dict[str, dict[str, object]], str, str]] = [
        ("a lone metric (ci-checks 0.1 and now)", 1, {}, "auto", "holm"),
        ("it is declared (required = true), 99 are not", n, {target: {"required": True}}, "auto", "holm"),
        (
            "it and 4 others are declared, 95 are not",
            n,
            {f"metrics/eval.json:task{i}.accuracy": {"required": True} for i in range(5)},
            "auto",
            "holm",
        ),
        ("nothing is declared: all 100 gate", n, {}, "auto", "holm"),
        (
            "another metric is declared, it is not",
            n,
            {"metrics/eval.json:task1.accuracy": {"required": True}},
            "auto",
            "holm",
        ),
        ("nothing declared, correction = none (0.1)", n, {}, "auto", "none"),
    ]
    print(
        f"\ndeclared vs undeclared: {n} metrics, one regresses by {shift:g} sigma ({SEEDS} seeds per side); "
        f"{count} pull requests per cell"
    )
    print(f"{'when the regressing metric...':<48} {'PR fails':>9} {'flagged':>8} {'false failures':>15}")
    for label, m, policies, gate, correction in configs:
        rng = random.Random(seed * 104729 + m + len(policies))
        caught = flagged = false = 0
        for _ in range(count):
            prs = _pull_request(rng, m, policies=policies, shift={0: shift})
            caught += _fails(prs, gate=gate, correction=correction)
            flagged += prs[0].verdict is Verdict.REGRESSED
            false += _fails(_pull_request(rng, m, policies=policies), gate=gate, correction=correction)
        print(f"{label:<48} {caught / count:>9.1%} {flagged / count:>8.1%} {false / count:>15.1%}")
    print(
        "(PR fails: detection; flagged: the metric is shown as regressed, report-only or not; false failures: the "
        "same set-up with no real change)"
    )


def diverged_seed(trials: int, seed: int) -> None:
    count = max(100, trials // 10)
    print(f"\none diverged seed: the first PR seed of one metric is 10 sigma low; {count} pull requests per row")
    print(f"{'metrics':>7} {'flagged':>8} {'its verdict: within noise':>26} {'regressed':>10}")
    for n in (1, 100):
        rng = random.Random(seed * 31 + n)
        flagged = noise = regressed = 0
        for _ in range(count):
            prs = _pull_request(rng, n, diverged={0: 10.0})
            _fails(prs)
            flagged += prs[0].diverged is not None
            noise += prs[0].verdict is Verdict.WITHIN_NOISE
            regressed += prs[0].verdict is Verdict.REGRESSED
        print(f"{n:>7} {flagged / count:>8.1%} {noise / count:>26.1%} {regressed / count:>10.1%}")


# ci-checks 0.1 guessed "lower is better" from this pattern and "higher" for every other name.
OLD_LOWER = re.compile(r"loss|error|perplexity|latency|(?:^|[^a-z])(?:mse|mae|rmse|time|ppl|err)(?:$|[^a-z])")
VOCABULARY = {
    "lower": """wer cer nll fid bpd runtime train_seconds eval_ms mape kl_divergence peak_memory_mb val_loss
        top1_err error_rate perplexity rmse latency_p99_ms gpuMemoryMiB model_size_mb ece brier_score""".split(),
    "higher": """accuracy val/acc f1 top1 top5_acc mAP mIoU dice bleu rouge_l auroc r2 psnr ssim
        tokens_per_sec samples_per_second throughput reward success_rate""".split(),
    "unknown": "time_to_accuracy num_params epochs foo per_class_cat".split(),
}


def vocabulary() -> None:
    print(
        "\nthe direction vocabulary: the direction each name is given (unknown: changes are 'changed', never improved)"
    )
    print(f"{'name':<22} {'expected':>9} {'ci-checks 0.1':>14} {'now':>8}")
    old_right = new_right = total = 0
    for expected, names in VOCABULARY.items():
        for name in names:
            key = name.lower()
            old = "lower" if OLD_LOWER.search(key) else "higher"
            new = guess_direction(f"m.json:{name}")
            old_right += old == expected
            new_right += new == expected
            total += 1
            print(f"{name:<22} {expected:>9} {old:>14} {new:>8}")
    print(f"(right: ci-checks 0.1 {old_right}/{total}, now {new_right}/{total}; 0.1 could not say 'unknown')")


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


def _naive_diff(root: str) -> int:
    """The baseline: read every metrics file on both sides (git show, the working tree), flatten, subtract."""
    changed = 0
    for i in range(4):
        path = f"metrics/part{i}.json"
        old = json.loads(subprocess.run(["git", "show", f"main:{path}"], cwd=root, capture_output=True).stdout)
        with open(os.path.join(root, path)) as fh:
            new = json.load(fh)
        flat_old, flat_new = dict(_flat(old)), dict(_flat(new))
        for key, value in flat_new.items():
            before = flat_old.get(key)
            a = statistics.fmean(before) if isinstance(before, list) else before
            b = statistics.fmean(value) if isinstance(value, list) else value
            changed += a is not None and b - a != 0
    return changed


def _flat(doc: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in doc.items():
        name = f"{prefix}.{key}" if prefix else key
        out += _flat(value, name) if isinstance(value, dict) else [(name, value)]
    return out


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
        from ci_checks.main import main
        from ci_checks.render import render_json

        with open(out, "w") as fh:
            fh.write(render_json(report))
        md = os.path.join(tmp, "report.md")

        def run_report() -> int:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                return main(["report", out, "--output", md])

        first_report, median_report = _seconds(run_report, 5)
        print(
            f"  report on its results, in-process: first {first_report * 1000:.0f} ms, median of 5 "
            f"{median_report * 1000:.0f} ms ({os.path.getsize(md):,} characters of Markdown)"
        )
        _, naive = _seconds(lambda: _naive_diff(root), 5)
        print(
            f"  baseline, the least any comparison does (git show + json.load of both sides, flatten, subtract): "
            f"median of 5 {naive * 1000:.0f} ms; compare + report take {(median + median_report) / naive:.1f}x that"
        )
        for args in (["compare", "--head-dir", root, "--quiet", "--output", out], ["report", out, "--output", md]):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ci_checks", *args], capture_output=True, check=False)
            print(
                f"  ci-checks {args[0]} as a new process (Python start-up included): "
                f"{(time.perf_counter() - start) * 1000:.0f} ms"
            )
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import ci_checks"], capture_output=True, check=False)
        print(f"  a new Python process that only imports ci_checks: {(time.perf_counter() - start) * 1000:.0f} ms")
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
    parser.add_argument("--metrics", type=int, default=500, help="metrics in the timed repository (default: 500)")
    parser.add_argument("--skip-timing", action="store_true", help="only the simulations")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    simulate(args.trials, args.seed)
    per_pull_request(args.trials, args.seed)
    declared_vs_undeclared(args.trials, args.seed)
    diverged_seed(args.trials, args.seed)
    vocabulary()
    print(f"(simulations: {time.perf_counter() - start:.0f} s)")
    if not args.skip_timing:
        timing(args.metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
