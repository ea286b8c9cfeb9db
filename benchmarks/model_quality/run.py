"""Seeded model-quality regressions and harmless twins, each judged by `ci-checks quality --base` as CI runs it.

A small real project (tabular data in a pandas DataFrame, an MLP trained from the project's code in seconds, a
quality spec with two slices, an INV, a DIR and an MFT test) is committed as the base; each scenario changes the
working tree as a pull request would and runs `ci-checks quality --base HEAD` in a fresh process:

- regressions, each meant for one suite: a slice whose labels a broken data join corrupts (the average moves
  little), a preprocessing change that breaks an invariance (a nuisance feature scaled up), a miscalibrated head
  (its logits scaled down);
- harmless twins: the same model retrained with another seed, which must pass.

Then the whole quality tier on the bundled example (a fresh clone: the base's model and this change's are both
trained from the example's code, and compared), timed, and the rollback drill's benchmark (rollback.py next to
this file, when it is there), whose lines are printed as they are.

Usage: python benchmarks/model_quality/run.py [--twins N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIMEOUT_S = 900  # a safety cap per run, never part of a verdict
ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "DVC_NO_ANALYTICS": "1",
}

DATA = '''
"""Three classes from four features: the class is the largest of x0..x2. x3 is a shortcut (a watermark that the
data source adds, shifted by class): the model must not use it, and the training augmentation makes sure it cannot."""
import numpy as np
import pandas as pd


def make(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = x[:, :3].argmax(1).astype(np.int64)
    x[:, 3] = 0.1 * x[:, 3] + 2.0 * (y - 1.0)
    region = np.where(x[:, 1] > 2.1, "rare", np.where(x[:, 0] > 0, "east", "west"))  # rare: 1.8% of rows
    return x, y, pd.DataFrame({"region": region, "x0": x[:, 0]})
'''

MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, nuisance=1.0):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
        self.temperature = 1.0
        # The preprocessing: per-feature scales applied before the network.
        self.register_buffer("scale", torch.tensor([1.0, 1.0, 1.0, nuisance]))

    def forward(self, x):
        return self.body(x * self.scale) * self.temperature
"""

TRAIN = '''
import torch

from data import make
from model import Net


def train(seed=0, corrupt=None, temperature=1.0, nuisance=1.0, augment=True, steps=300):
    """Full-batch Adam; corrupt=REGION shifts every third label of that region by one class (a broken join)."""
    torch.set_num_threads(1)  # a tiny model: more threads only contend on a shared 2-core runner
    x, y, frame = make(4000, seed=7)
    y = y.copy()
    if corrupt:
        rows = (frame["region"] == corrupt).to_numpy().nonzero()[0][::3]
        y[rows] = (y[rows] + 1) % 3
    torch.manual_seed(seed)
    model = Net(nuisance=nuisance)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = xs
        if augment:  # shuffle the watermark across rows: it carries no label, so the model learns to ignore it
            batch = xs.clone()
            batch[:, 3] = xs[torch.randperm(len(xs), generator=gen), 3]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(batch), ys).backward()
        optimizer.step()
    model.temperature = temperature
    return model.eval()
'''

SPEC = """
import json
import os

import torch

from data import make
from train import train

HERE = os.path.dirname(os.path.abspath(__file__))


def quality_spec():
    with open(os.path.join(HERE, "params.json")) as fh:
        params = json.load(fh)
    x, y, frame = make(4000, seed=123)

    def shift_x0(inputs, targets):
        moved = inputs.clone()
        moved[:, 0] += 0.5
        return moved

    return {
        "model": lambda: train(**params),
        "dataset": {"inputs": torch.from_numpy(x), "targets": torch.from_numpy(y), "metadata": frame},
        "slice_by": ["region"],
        "slices": {"x0-high": lambda inputs, targets, metadata: metadata["x0"].to_numpy() > 1.0},
        "behaviour": [
            {"name": "inv-nuisance", "type": "INV", "perturb": lambda i, t: i + torch.tensor([0, 0, 0, 1.0]),
             "tolerance": 0.1},
            {"name": "dir-x0", "type": "DIR", "perturb": shift_x0, "expect": "up", "of": 0, "tolerance": 0.01},
            {"name": "mft-obvious", "type": "MFT", "inputs": torch.eye(4)[:3] * 3, "targets": torch.arange(3)},
        ],
        "metrics": ["accuracy", "f1"],
    }
"""

PYPROJECT = """
[tool.ci-checks.quality]
spec = "quality_spec.py:quality_spec"
min = { accuracy = 0.8 }
max-failure-rate = 0.1
max-ece = 0.05
"""

# name -> (the suite meant to flag it, or None for a twin; train() params of the pull request)
REGRESSIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "slice degraded (a third of the labels of region=rare)": ("quality slices", {"corrupt": "rare"}),
    "invariance broken (augmentation dropped)": ("quality behaviour", {"augment": False}),
    "miscalibrated head (logits x0.25)": ("quality calibration", {"temperature": 0.25}),
}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **ENV}, capture_output=True, text=True, check=True
    ).stdout


def _project(folder: Path, params: dict[str, Any]) -> None:
    files = {
        "data.py": DATA,
        "model.py": MODEL,
        "train.py": TRAIN,
        "quality_spec.py": SPEC,
        "pyproject.toml": PYPROJECT,
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "params.json").write_text(json.dumps(params))


def _quality(cwd: Path, out: Path) -> tuple[int, dict[str, Any], float]:
    """`ci-checks quality --base HEAD` in a fresh process, as CI runs it: exit code, results, wall seconds."""
    argv = [sys.executable, "-m", "ci_checks", "quality", "--base", "HEAD", "--quiet", "--format", "json"]
    start = time.monotonic()
    proc = subprocess.run(
        [*argv, "--output", str(out)],
        cwd=cwd,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    seconds = time.monotonic() - start
    doc = json.loads(out.read_text()) if out.exists() else {}
    if proc.returncode not in (0, 1):
        print(f"  exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return proc.returncode, doc, seconds


def _flagged(doc: dict[str, Any]) -> list[str]:
    return [c["check"] for c in doc.get("checks", []) if c["status"] == "fail"]


def _figure(doc: dict[str, Any], suite: str) -> dict[str, Any]:
    """The figures that show the regression, as the results hold them."""
    checks = {c["check"]: c["figures"] for c in doc.get("checks", [])}
    if suite == "quality slices" and suite in checks:
        rows = {r["slice"]: r for r in checks[suite]["rows"]}
        rare = rows.get("region=rare", {}).get("compared", {}).get("accuracy", {})
        whole = rows.get("(all)", {}).get("compared", {}).get("accuracy", {})
        return {
            "slice": "region=rare",
            "slice_n": rows.get("region=rare", {}).get("n"),
            "slice_accuracy": rare,
            "whole_accuracy": whole,
        }
    if suite == "quality behaviour" and suite in checks:
        row = next(r for r in checks[suite]["rows"] if r["test"] == "inv-nuisance")
        cmp = row.get("compared", {})
        return {
            "test": "inv-nuisance",
            "base_rate": cmp.get("base_rate"),
            "rate": row["rate"],
            "max_rate": row["max_rate"],
            "verdict": cmp.get("verdict"),
        }
    if suite == "quality calibration" and suite in checks:
        return {"ece": checks[suite].get("compared", {})}
    return {}


def describe(suite: str | None, fig: dict[str, Any]) -> str:
    """One line for the figures of _figure."""
    if suite == "quality slices" and fig:
        rare, whole = fig["slice_accuracy"], fig["whole_accuracy"]
        return (
            f"`{fig['slice']}` ({fig['slice_n']} examples) accuracy {rare.get('base')} → {rare.get('head')} "
            f"{rare.get('verdict')}; whole set {whole.get('base')} → {whole.get('head')} {whole.get('verdict')}"
        )
    if suite == "quality behaviour" and fig:
        return (
            f"`{fig['test']}` failure rate {fig['base_rate']} → {fig['rate']} {fig['verdict']} (threshold "
            f"{fig['max_rate']})"
        )
    if suite == "quality calibration" and fig:
        ece = fig["ece"]
        return f"ECE {ece.get('base')} → {ece.get('head')} {ece.get('verdict')}"
    return "-"


def scenarios(twins: int, workdir: Path) -> list[dict[str, Any]]:
    repo = workdir / "project"
    repo.mkdir()
    _project(repo, {})
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base: the served model")
    cases: list[tuple[str, str | None, dict[str, Any]]] = [(n, s, p) for n, (s, p) in REGRESSIONS.items()]
    cases += [(f"twin: retrained with seed {k}", None, {"seed": k}) for k in range(1, twins + 1)]
    rows = []
    for name, suite, params in cases:
        (repo / "params.json").write_text(json.dumps(params))
        code, doc, seconds = _quality(repo, workdir / "results.json")
        flagged = _flagged(doc)
        row = {"scenario": name, "intended": suite, "exit_code": code, "flagged": flagged, "seconds": round(seconds, 1)}
        row["caught"] = suite in flagged if suite else None
        row["false_alarm"] = bool(flagged) or code != 0 if suite is None else None
        row["figures"] = _figure(doc, suite) if suite else {}
        flips = next((c["figures"] for c in doc.get("checks", []) if c["check"] == "quality flips"), {})
        row["flip_rate"] = flips.get("rate")
        rows.append(row)
        what = ("caught" if row["caught"] else "MISSED") if suite else ("FALSE ALARM" if row["false_alarm"] else "pass")
        print(
            f"{name:<50} {what:<11} exit {code}  flagged: {', '.join(flagged) or '-'}  flips {row['flip_rate']}"
            f"  {describe(suite, row['figures'])}  ({seconds:.1f}s)",
            flush=True,
        )
    return rows


def example_tier(workdir: Path) -> dict[str, Any]:
    """The quality tier on a fresh clone of the example: as shipped, against its own base (both models trained)."""
    clone = workdir / "clone"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    _git(clone, "init", "-q", "-b", "main")
    _git(clone, "add", "-A")
    _git(clone, "commit", "-q", "-m", "as shipped")
    code, doc, seconds = _quality(clone / "examples", workdir / "example.json")
    row = {"exit_code": code, "seconds": round(seconds, 1), "checks": [c["check"] for c in doc.get("checks", [])]}
    print(
        f"example quality tier (fresh clone, --base HEAD, both models trained): exit {code} in {seconds:.1f}s on "
        f"{os.cpu_count()} CPU(s); checks: {', '.join(row['checks'])}",
        flush=True,
    )
    return row


RESULTS = HERE / "results.json"
DOCS = ROOT / "docs" / "benchmarks.md"
MARKERS = (
    "<!-- model_quality figures: generated by benchmarks/model_quality/run.py --write-docs -->",
    "<!-- end model_quality -->",
)


def docs_block(fig: dict[str, Any]) -> str:
    """The figures of a run, as docs/benchmarks.md shows them."""
    rows = fig["scenarios"]
    twins = [r for r in rows if r["intended"] is None]
    lines = [
        MARKERS[0],
        "",
        f"Last run: {fig['date']}, {fig['cpus']} CPU(s) shared with other work (load average {fig['load'][0]:.1f} at "
        f"the start, {fig['load'][1]:.1f} at the end): the verdicts do not depend on the load, the seconds do.",
        "",
        "| scenario | verdict | suites that failed | the figure behind it | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["intended"] is None:
            continue
        flagged = ", ".join(f.removeprefix("quality ") for f in r["flagged"]) or "none"
        verdict = "caught" if r["caught"] else "missed"
        lines.append(
            f"| {r['scenario']} | {verdict} | {flagged} | {describe(r['intended'], r['figures'])} | {r['seconds']} |"
        )
    if twins:
        flips = [r["flip_rate"] for r in twins if r["flip_rate"] is not None]
        alarms = sum(1 for r in twins if r["false_alarm"])
        seconds = [r["seconds"] for r in twins]
        lines.append(
            f"| {len(twins)} twins: retrained with seeds 1 to {len(twins)} | "
            f"{len(twins) - alarms} of {len(twins)} pass | "
            f"{'none' if not alarms else alarms} | prediction flips {min(flips):.2%} to {max(flips):.2%} | "
            f"{min(seconds)} to {max(seconds)} |"
        )
    caught = sum(1 for r in rows if r["caught"])
    regressions = sum(1 for r in rows if r["intended"])
    example = fig["example"]
    lines += [
        "",
        "| figure | measured |",
        "|---|---|",
        f"| regressions flagged by the intended suite | {caught}/{regressions} |",
        f"| false alarms on harmless twins | {sum(1 for r in twins if r['false_alarm'])}/{len(twins)} |",
        f"| the whole quality tier on the example (fresh clone, `--base HEAD`, both models trained) | "
        f"{example['seconds']} s, exit {example['exit_code']} (target: under 60 s on 2 cores) |",
    ]
    summary = next((line for line in fig.get("rollback", []) if line.startswith("rollback:")), None)
    if summary:
        lines.append(f"| rollback drill (`rollback.py`) | {summary.removeprefix('rollback: ')} |")
    return "\n".join([*lines, "", MARKERS[1]])


def write_docs(fig: dict[str, Any]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    start, end = text.find(MARKERS[0]), text.find(MARKERS[1])
    if start < 0 or end < start:
        raise SystemExit(f"{DOCS}: no model_quality markers ({MARKERS[0]} ... {MARKERS[1]}); add them")
    DOCS.write_text(text[:start] + docs_block(fig) + text[end + len(MARKERS[1]) :], encoding="utf-8")
    RESULTS.write_text(json.dumps(fig, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--twins", type=int, default=5, help="harmless twins (other seeds) (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"write {RESULTS.name} and the figures in docs/benchmarks.md"
    )
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ci-checks-model-quality-") as temp:
        workdir = Path(temp)
        rows = scenarios(args.twins, workdir)
        example = example_tier(workdir)
    caught = sum(1 for r in rows if r["caught"])
    regressions = sum(1 for r in rows if r["intended"])
    alarms = sum(1 for r in rows if r["false_alarm"])
    twins = sum(1 for r in rows if r["intended"] is None)
    print(f"\nregressions flagged by the intended suite: {caught}/{regressions}")
    print(f"false alarms on harmless twins: {alarms}/{twins}")
    print(f"example quality tier: {example['seconds']}s (target: under 60 s on 2 cores), exit {example['exit_code']}")
    load_end = os.getloadavg()[0]
    rollback = HERE / "rollback.py"
    rollback_lines: list[str] = []
    if rollback.exists():
        print("\nrollback drill (benchmarks/model_quality/rollback.py):", flush=True)
        proc = subprocess.run(
            [sys.executable, str(rollback)], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
        rollback_lines = proc.stdout.splitlines()
        for line in rollback_lines:
            print(line)
        if proc.returncode != 0:
            print(f"rollback.py exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    fig = {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "load": [round(load_start, 2), round(load_end, 2)],
        "scenarios": rows,
        "example": example,
        "rollback": rollback_lines,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(fig, fh, indent=2)
    if args.write_docs:
        write_docs(fig)
    met = caught == regressions and alarms == 0 and example["seconds"] < 60 and example["exit_code"] == 0
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
