"""What the training checks cost over the training they run, in one process, at every model size.

Three measurements, each printed as a table (and --json FILE, --plot FILE):

1. **cases**: every spec of benchmarks/training_bugs/specs, warm in this process: ``run_checks(spec)`` (all checks,
   as train-check runs them) against a bare loop that builds the spec's objects the same way and trains as many
   steps as the checks' shared run did (its report's ``subject.training_steps``) with the spec's own step. Same
   process, same spec object, turns interleaved, ``--repeats`` times; the ratio is the median over the repeats of
   checks/bare.
2. **scaling**: an MLP classifier from ~7k to ~20M parameters, at batch sizes 8 to 128, measured the same way.
3. **tier** (``--tier``): the CPU tier in fresh processes: ``ci-checks train-check --export-parity --golden`` on
   the example project (training checks, ONNX export parity and golden suites in one process) against a bare
   script that imports torch, builds the example's spec and trains the same number of steps, and against the
   separate commands (``train-check``, then ``export-parity``, then ``golden``) it replaces.

Targets (issue 15): median and p90 overhead at most 1.5x and 2x; the combined tier at most 1.3x the bare script.
Ratios are taken within one run, turn by turn, so the machine's speed cancels out; absolute seconds are printed for
context only.

Usage: python benchmarks/overhead/run.py [--repeats K] [--only PATTERN ...] [--no-cases] [--no-scaling]
       [--sizes 7k,100k,...] [--batches 8,32,128] [--tier] [--json FILE] [--plot FILE] [--threads N]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SPECS = HERE.parent / "training_bugs" / "specs"
SIZES = {"7k": 56, "100k": 280, "1M": 960, "5M": 2200, "20M": 4440}  # hidden width of the MLP -> ~parameters
BATCHES = (8, 32, 128)
TARGET_MEDIAN, TARGET_P90, TARGET_TIER = 1.5, 2.0, 1.3


@dataclass
class Measured:
    name: str
    params: int = 0
    batch: int = 0
    steps: int = 0  # every training step the checks took (the shared run's and the checks' own): the bare loop's
    run_steps: int = 0  # the shared run's steps alone
    kit_seconds: list[float] = field(default_factory=list)
    bare_seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)  # the same on CPU time (user + system) of this process
    status: str = ""
    error: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else math.nan

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.cpu_ratios) if self.cpu_ratios else math.nan


def bare_loop(spec: Any, steps: int) -> None:
    """Build the spec's objects as the harness does and train `steps` steps through the spec's own step."""
    import torch

    from ci_checks.engine.seeding import seed_everything
    from ci_checks.engine.tree import map_tree

    device = torch.device(spec.device or "cpu")
    seed_everything(spec.seed)
    if spec.setup is not None:
        model, optimizer = spec.setup()
        model.to(device)
    else:
        model = spec.model_factory().to(device)
        optimizer = spec.optimizer_factory(model.parameters())
    batch = map_tree(spec.batch, lambda t: t.to(device))
    inputs, targets = batch
    for _ in range(steps):
        if spec.train_step is not None:
            loss = spec.train_step(model, batch, spec.loss_fn, optimizer)
        else:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            if spec.forward is not None:
                outputs = spec.forward(model, inputs)
            elif isinstance(inputs, dict):
                outputs = model(**inputs)
            elif isinstance(inputs, (tuple, list)):
                outputs = model(*inputs)
            else:
                outputs = model(inputs)
            loss = spec.loss_fn(outputs, targets)
            loss.backward()
            optimizer.step()
        float(loss)  # every training loop reads its loss


def measure(name: str, make_spec: Callable[[], Any], repeats: int, progress: Callable[[str], None]) -> Measured:
    """run_checks vs the bare loop on one spec, turns interleaved, in this process."""
    import torch

    from ci_checks.checks import run_checks

    out = Measured(name)
    spec = make_spec()
    for i in range(repeats + 1):  # the first turn warms both paths up (lazy imports, allocator) and is not counted
        start, cpu = time.perf_counter(), time.process_time()
        report = run_checks(spec)
        kit, kit_cpu = time.perf_counter() - start, time.process_time() - cpu
        if report.subject.get("internal_errors"):
            out.error = "; ".join(report.subject["internal_errors"])
            return out
        steps = int(report.subject.get("steps_taken") or 0)
        out.status = report.status
        out.steps = steps
        out.run_steps = int(report.subject.get("training_steps") or 0)
        start, cpu = time.perf_counter(), time.process_time()
        bare_loop(spec, steps)
        bare, bare_cpu = time.perf_counter() - start, time.process_time() - cpu
        if i:
            out.kit_seconds.append(kit)
            out.bare_seconds.append(bare)
            out.ratios.append(kit / bare if bare > 0 else math.nan)
            out.cpu_ratios.append(kit_cpu / bare_cpu if bare_cpu > 0 else math.nan)
        progress(f"{name}: turn {i}/{repeats}: checks {kit:.2f}s, bare {bare:.2f}s ({steps} steps)")
    model = spec.model_factory() if spec.model_factory is not None else spec.setup()[0]
    out.params = sum(p.numel() for p in model.parameters())
    batch = spec.batch[0]
    out.batch = int(batch.shape[spec.batch_dim]) if isinstance(batch, torch.Tensor) else 0
    return out


def case_specs(patterns: Sequence[str]) -> list[Path]:
    paths = sorted(SPECS.glob("*.py"))
    if patterns:
        paths = [p for p in paths if any(fnmatch.fnmatch(p.stem, pat) for pat in patterns)]
    return paths


def mlp_spec(width: int, batch: int) -> Callable[[], Any]:
    """An MLP classifier (64 features, two hidden layers of `width`, 10 classes) with Adam, default step."""

    def make() -> Any:
        import torch
        from torch import nn

        from ci_checks.spec import TrainingSpec

        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 64, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        return TrainingSpec(
            model_factory=lambda: nn.Sequential(
                nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
            ),
            optimizer_factory=lambda params: torch.optim.Adam(params, lr=1e-3),
            loss_fn=nn.CrossEntropyLoss(),
            batch=(x, y),
        )

    return make


def p90(values: Sequence[float]) -> float:
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return math.nan
    return finite[min(len(finite) - 1, math.ceil(0.9 * len(finite)) - 1)]


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def print_rows(title: str, rows: Sequence[Measured]) -> None:
    print(f"\n{title}")
    w = max([len(r.name) for r in rows] + [4])
    print(
        f"{'case':{w}} {'params':>9} {'batch':>5} {'steps':>5} {'checks s':>8} {'bare s':>7} {'ratio':>6} "
        f"{'cpu':>6}  status"
    )
    for r in rows:
        if r.error:
            print(f"{r.name:{w}} error: {r.error}")
            continue
        print(
            f"{r.name:{w}} {r.params:9d} {r.batch:5d} {r.steps:5d} {_median(r.kit_seconds):8.3f} "
            f"{_median(r.bare_seconds):7.3f} {r.ratio:5.2f}x {r.cpu_ratio:5.2f}x  {r.status}"
        )
    for label, ratios in (
        ("wall clock", [r.ratio for r in rows if not r.error]),
        ("CPU time", [r.cpu_ratio for r in rows if not r.error]),
    ):
        print(
            f"overhead (checks / bare loop, same steps), {label}: median {_median(ratios):.2f}x, p90 "
            f"{p90(ratios):.2f}x, max {max(ratios, default=math.nan):.2f}x over {len(ratios)} cases; "
            f"{sum(r <= TARGET_MEDIAN for r in ratios)}/{len(ratios)} at or under {TARGET_MEDIAN}x "
            f"(targets: median <= {TARGET_MEDIAN}x, p90 <= {TARGET_P90}x)"
        )


def tier(repeats: int, threads: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """The CPU tier in fresh processes: combined command vs bare script vs the three separate commands."""
    import torch

    exe = str(Path(sys.executable).parent / "ci-checks")
    spec = f"{ROOT / 'examples' / 'ci_spec.py'}:training_spec"
    common = ["--threads", str(threads), "--quiet"]
    with tempfile.TemporaryDirectory(prefix="ci-checks-tier-") as tmp:
        # A project of its own: the example's spec and one golden suite of 64 points, recorded once.
        torch.save(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), os.path.join(tmp, "points.pt"))
        with open(os.path.join(tmp, "pyproject.toml"), "w", encoding="utf-8") as fh:
            fh.write(
                f'[tool.ci-checks]\nspec = "{spec}"\n\n[tool.ci-checks.golden]\nsuites = {{ points = "points.pt" }}\n'
            )
        _timed([exe, "golden", "--update", "--quiet"], tmp)
        out = os.path.join(tmp, "r.json")
        combined = [exe, "train-check", *common, "--export-parity", "--golden", "--output", out]
        separate = [
            [exe, "train-check", *common, "--output", out],
            [exe, "export-parity", "--quiet", "--output", os.path.join(tmp, "e.json")],
            [exe, "golden", "--quiet", "--output", os.path.join(tmp, "g.json")],
        ]
        script = os.path.join(tmp, "bare.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(BARE_SCRIPT)
        times: dict[str, list[float]] = {k: [] for k in ("combined", "bare", "separate")}
        cpu: dict[str, list[float]] = {k: [] for k in ("combined", "bare", "separate")}
        steps = 0
        for i in range(repeats + 1):  # turn 0 warms the file cache and is not counted
            t = _timed(combined, tmp)
            with open(out, encoding="utf-8") as fh:
                steps = int(json.load(fh)["subject"].get("steps_taken") or 0)
            b = _timed([sys.executable, script, spec, str(steps), str(threads)], tmp)
            parts = [_timed(cmd, tmp) for cmd in separate]
            sep = (sum(p[0] for p in parts), sum(p[1] for p in parts))
            if i:
                for key, (wall, used) in (("combined", t), ("bare", b), ("separate", sep)):
                    times[key].append(wall)
                    cpu[key].append(used)
            progress(f"tier: turn {i}/{repeats}: combined {t[0]:.2f}s, bare {b[0]:.2f}s, separate {sep[0]:.2f}s")
    result = {
        "steps": steps,
        "seconds": {k: _median(v) for k, v in times.items()},
        "cpu_seconds": {k: _median(v) for k, v in cpu.items()},
        "combined_over_bare": _median([c / b for c, b in zip(times["combined"], times["bare"])]),
        "combined_over_bare_cpu": _median([c / b for c, b in zip(cpu["combined"], cpu["bare"])]),
        "separate_over_combined": _median([s / c for s, c in zip(times["separate"], times["combined"])]),
    }
    print("\nCPU tier on the example, fresh processes (median of the turns; wall clock, and CPU time user+sys)")
    w, c = result["seconds"], result["cpu_seconds"]
    print(
        f"combined train-check --export-parity --golden {w['combined']:.2f}s ({c['combined']:.2f}s CPU); bare script "
        f"(import torch, build, {steps} steps) {w['bare']:.2f}s ({c['bare']:.2f}s CPU); three separate commands "
        f"{w['separate']:.2f}s ({c['separate']:.2f}s CPU)"
    )
    print(
        f"combined / bare: {result['combined_over_bare']:.2f}x wall, {result['combined_over_bare_cpu']:.2f}x CPU "
        f"(target <= {TARGET_TIER}x); separate / combined: {result['separate_over_combined']:.2f}x wall"
    )
    return result


def _timed(cmd: list[str], cwd: str) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one command; CPU time is what a busy machine inflates least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[1:3])} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


BARE_SCRIPT = """\
import sys

import torch

from ci_checks.spec import load_spec

sys.path.insert(0, {root!r})
from benchmarks.overhead.run import bare_loop

ref, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
bare_loop(load_spec(ref), steps)
""".format(root=str(ROOT))


def plot(rows: Sequence[Measured], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for batch in sorted({r.batch for r in rows}):
        pts = sorted((r.params, r.ratio) for r in rows if r.batch == batch and not r.error)
        ax.plot([p for p, _ in pts], [q for _, q in pts], "o-", label=f"batch {batch}")
    ax.axhline(TARGET_MEDIAN, color="grey", linestyle="--", linewidth=1, label=f"target {TARGET_MEDIAN}x")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("checks / bare loop (same steps)")
    ax.set_ylim(bottom=1.0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("ci-checks train-check overhead, one process")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"plot: {path}")


# The figures in the docs come from a run's JSON, rendered here; tests/test_benchmark_docs.py checks that the
# README and docs/benchmarks.md hold exactly what results.json renders to.
RESULTS = HERE / "results.json"
DOCS = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
MARKERS = ("<!-- overhead: benchmarks/overhead/run.py --write-docs -->", "<!-- /overhead -->")


def _stats(rows: Sequence[dict[str, Any]], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in rows if not r.get("error") and math.isfinite(r[key])]
    return _median(values), p90(values), max(values, default=math.nan)


def docs_block(fig: dict[str, Any]) -> str:
    """The figures of docs/benchmarks.md's overhead section, from a run's JSON."""
    lines = [MARKERS[0], "", "| measure | ci-checks | target |", "|---|---|---|"]
    for key, what in (("cases", "correct training-bugs specs"), ("scaling", "MLP, 7k-20M parameters x batch 8-128")):
        rows = fig.get(key) or []
        if rows:
            w, c = _stats(rows, "ratio"), _stats(rows, "cpu_ratio")
            lines.append(
                f"| checks / bare loop, same steps, one process: {len(rows)} {what} | CPU time median {c[0]:.2f}x, "
                f"p90 {c[1]:.2f}x, max {c[2]:.2f}x (wall clock {w[0]:.2f}x / {w[1]:.2f}x / {w[2]:.2f}x) | median "
                f"<= {TARGET_MEDIAN}x, p90 <= {TARGET_P90}x |"
            )
    tier = fig.get("tier")
    if tier:
        sec, cpu = tier["seconds"], tier["cpu_seconds"]
        lines.append(
            f"| CPU tier on the example, fresh processes: `train-check --export-parity --golden` / a bare script "
            f"(import torch, {tier['steps']} steps) | {tier['combined_over_bare_cpu']:.2f}x CPU time "
            f"({cpu['combined']:.2f} s / {cpu['bare']:.2f} s), {tier['combined_over_bare']:.2f}x wall clock | "
            f"<= {TARGET_TIER}x |"
        )
        lines.append(
            f"| the same three as separate commands / combined | {tier['separate_over_combined']:.2f}x wall clock "
            f"({sec['separate']:.2f} s / {sec['combined']:.2f} s) | |"
        )
    scaling = fig.get("scaling") or []
    if scaling:
        batches = sorted({r["batch"] for r in scaling})
        sizes = sorted({r["params"] for r in scaling})
        lines += ["", "CPU-time ratio (checks / bare loop, same steps) by parameters and batch size:", ""]
        lines.append("| parameters | " + " | ".join(f"batch {b}" for b in batches) + " |")
        lines.append("|---:|" + "---:|" * len(batches))
        for n in sizes:
            cells = []
            for b in batches:
                r = next((r for r in scaling if r["params"] == n and r["batch"] == b), None)
                cells.append("" if r is None or r.get("error") else f"{r['cpu_ratio']:.2f}x ({r['steps']} steps)")
            lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines += ["", f"Threads: {fig.get('threads', 1)}; turns per case: {fig.get('repeats')}.", "", MARKERS[1]]
    return "\n".join(lines)


def readme_block(fig: dict[str, Any]) -> str:
    """The README's one sentence on the checks' cost, from a run's JSON."""
    parts = []
    cases = fig.get("cases") or []
    if cases:
        c = _stats(cases, "cpu_ratio")
        parts.append(
            f"In one process the checks cost a median {c[0]:.2f}x (p90 {c[1]:.2f}x) a bare loop of the same steps;"
        )
    tier = fig.get("tier")
    if tier:
        parts.append(
            "the CPU tier (training checks, ONNX parity, golden suites) in a fresh process, "
            f"{tier['combined_over_bare_cpu']:.2f}x the CPU time of a script that imports torch and trains as many "
            "steps."
        )
    return MARKERS[0] + "\n" + "\n".join(parts) + "\n" + MARKERS[1]


def replace_block(text: str, block: str, where: str) -> str:
    start, end = text.find(MARKERS[0]), text.find(MARKERS[1])
    if start < 0 or end < start:
        raise SystemExit(f"{where}: no overhead markers ({MARKERS[0]} ... {MARKERS[1]}); add them where the figures go")
    return text[:start] + block + text[end + len(MARKERS[1]) :]


def write_docs(fig: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(fig, indent=2) + "\n", encoding="utf-8")
    for path, block in ((DOCS, docs_block(fig)), (README, readme_block(fig))):
        path.write_text(replace_block(path.read_text(encoding="utf-8"), block, str(path)), encoding="utf-8")
        print(f"wrote the figures into {path.relative_to(ROOT)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved turns per case (default: 5)")
    parser.add_argument("--only", nargs="*", default=[], help="spec name patterns of the cases (default: all)")
    parser.add_argument("--no-cases", action="store_true", help="skip the training-bugs cases")
    parser.add_argument("--no-scaling", action="store_true", help="skip the MLP scaling table")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"MLP sizes (default: {','.join(SIZES)})")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="batch sizes (default: 8,32,128)")
    parser.add_argument("--tier", action="store_true", help="also time the CPU tier in fresh processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, as train-check)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--plot", metavar="FILE", help="write the scaling plot as PNG")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"save the figures as {RESULTS.relative_to(ROOT)} and render them into README.md and docs/benchmarks.md",
    )
    parser.add_argument("--from-json", metavar="FILE", help="render the docs from a saved run instead of measuring")
    args = parser.parse_args(argv)

    if args.from_json:
        with open(args.from_json, encoding="utf-8") as fh:
            saved = json.load(fh)
        if args.write_docs:
            write_docs(saved)
        else:
            print(docs_block(saved))
        return 0

    import torch

    from ci_checks.spec import load_spec

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(SPECS))

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    figures: dict[str, Any] = {"repeats": args.repeats, "threads": args.threads}
    if not args.no_cases:
        rows = [
            measure(p.stem, lambda p=p: load_spec(f"{p}:spec"), args.repeats, progress) for p in case_specs(args.only)
        ]
        print_rows("training-bugs specs, warm, one process", rows)
        figures["cases"] = [asdict(r) | {"ratio": r.ratio, "cpu_ratio": r.cpu_ratio} for r in rows]
    if not args.no_scaling:
        rows = []
        for size in args.sizes.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                rows.append(measure(f"mlp-{size}-b{batch}", mlp_spec(SIZES[size], batch), args.repeats, progress))
        print_rows("MLP scaling (parameters x batch size), warm, one process", rows)
        figures["scaling"] = [asdict(r) | {"ratio": r.ratio, "cpu_ratio": r.cpu_ratio} for r in rows]
        if args.plot:
            plot(rows, args.plot)
    if args.tier:
        figures["tier"] = tier(args.repeats, args.threads, progress)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)
    if args.write_docs:
        write_docs(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
