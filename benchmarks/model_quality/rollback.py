"""Benchmark the rollback drill: releases that can still be served must pass, releases that cannot must be flagged.

Builds a git repository from the example project (its model code and spec), trains small SpiralNet releases in it
(seed 0, and a harmless twin retrained with seed 1), records each release's golden outputs with its own weights,
tags them, then changes today's code or loses an artifact the way real projects do and runs `ci-checks rollback`
in a fresh process per case, as CI does. Prints one line per case, then: regressions flagged by the intended check,
false alarms on the healthy releases, exit codes 3, and the switch times (reported only: no verdict depends on them).

    python benchmarks/model_quality/rollback.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "DVC_NO_ANALYTICS": "1",
    "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
}
PYPROJECT = """\
[tool.ci-checks]
spec = "ci_spec.py:training_spec"

[tool.ci-checks.golden]
weights = "models/model.pt"
suites = { spirals = "golden/spirals.pt", edge = "golden/edge.pt" }
"""
TRAIN = """\
import sys

import torch

sys.path.insert(0, "src")
from model import SpiralNet  # noqa: E402
from prepare import spirals  # noqa: E402
from train import make_optimizer, save_checkpoint, train_step  # noqa: E402

seed = int(sys.argv[1])
torch.manual_seed(seed)
x, y = spirals(n_samples=600, classes=3, noise=0.2, seed=0)
x, y = torch.from_numpy(x), torch.from_numpy(y)
model = SpiralNet(hidden=64, dropout=0.1)
optimizer = make_optimizer(model.parameters(), lr=0.01, weight_decay=1e-4)
loss_fn = torch.nn.CrossEntropyLoss()
gen = torch.Generator().manual_seed(seed)
for epoch in range(8):
    for idx in torch.randperm(len(y), generator=gen).split(64):
        train_step(model, (x[idx], y[idx]), loss_fn, optimizer)
model.eval()
save_checkpoint(model, optimizer, "models/model.pt")
test_x, _ = spirals(n_samples=90, classes=3, noise=0.2, seed=7)
torch.save(torch.from_numpy(test_x), "golden/spirals.pt")
torch.save(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.5], [0.05, -0.9]]), "golden/edge.pt")
"""


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=self.path, env=ENV, capture_output=True, text=True, check=check)

    def git(self, *args: str) -> str:
        return self.run("git", *args).stdout

    def edit(self, path: str, old: str, new: str) -> None:
        file = self.path / path
        text = file.read_text()
        assert old in text, (path, old)
        file.write_text(text.replace(old, new))


def release(repo: Repo, tag: str, seed: int, *, dvc: bool = False) -> None:
    """Train a release with seed, record its golden outputs with its own weights, commit (weights in git or DVC)."""
    repo.run(sys.executable, "train.py", str(seed))
    repo.run(sys.executable, "-m", "ci_checks", "golden", "--update")
    if dvc:
        repo.run(sys.executable, "-m", "dvc", "add", "-q", "models/model.pt")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", f"release {tag}")
    repo.git("tag", tag)


def make_repo(folder: Path) -> Repo:
    repo = Repo(folder)
    folder.mkdir()
    repo.git("init", "-q", "-b", "main")
    shutil.copytree(EXAMPLES / "src", folder / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "ci_spec.py", folder)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "train.py").write_text(TRAIN)
    (folder / "models").mkdir()
    (folder / "golden").mkdir()
    (folder / ".gitignore").write_text("__pycache__/\n/results/\n")
    release(repo, "v1.0.0", seed=0)
    release(repo, "v1.1.0", seed=1)  # the harmless twin: the same model retrained with another seed
    repo.run(sys.executable, "-m", "dvc", "init", "-q")
    repo.git("rm", "-q", "--cached", "models/model.pt")
    release(repo, "v2.0.0", seed=2, dvc=True)  # from here on the weights are a DVC output
    repo.git("commit", "-q", "--allow-empty", "-m", "today")
    return repo


def lose_dvc_cache(repo: Repo) -> None:
    shutil.rmtree(repo.path / ".dvc" / "cache", ignore_errors=True)


# name, release, how today's repository differs, the check that must fail (None: a healthy release must pass)
CASES: list[tuple[str, str, Callable[[Repo], None] | None, str | None]] = [
    ("healthy release (git)", "v1.0.0", None, None),
    ("twin retrained with seed 1", "v1.1.0", None, None),
    ("healthy release (DVC cache)", "v2.0.0", None, None),
    (
        "layer renamed in today's model",
        "v1.0.0",
        lambda r: r.edit("src/model.py", "self.head", "self.classifier"),
        "rollback-load",
    ),
    (
        "hidden layer resized in today's spec",
        "v1.1.0",
        lambda r: r.edit("ci_spec.py", "SpiralNet(hidden=64", "SpiralNet(hidden=48"),
        "rollback-load",
    ),
    (
        "input scaling added to today's forward",
        "v1.0.0",
        lambda r: r.edit("src/model.py", "self.body(x)", "self.body(x / x.abs().max().clamp(min=1e-6))"),
        "rollback-golden",
    ),
    ("artifact lost (DVC data never pushed)", "v2.0.0", lose_dvc_cache, "rollback-artifact"),
]


def drill(repo: Repo, to: str, out: Path) -> tuple[int, dict[str, Any], float]:
    start = time.perf_counter()
    proc = repo.run(
        sys.executable, "-m", "ci_checks", "rollback", "--to", to, "--quiet", "--output", str(out), check=False
    )
    seconds = time.perf_counter() - start
    doc = json.loads(out.read_text()) if out.exists() else {}
    if proc.returncode not in (0, 1):
        print(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "", file=sys.stderr)
    return proc.returncode, doc, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ci-checks-bench-rollback-"))
    rows: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        repo = make_repo(work / "repo")
        setup_s = time.perf_counter() - started
        print(f"releases trained and tagged in {setup_s:.1f}s: v1.0.0 (seed 0), v1.1.0 (seed 1), v2.0.0 (DVC)")
        for i, (name, to, change, intended) in enumerate(CASES):
            if change is not None:
                change(repo)
            code, doc, seconds = drill(repo, to, work / f"case{i}.json")
            failing = sorted({c["check"].split(" ")[0] for c in doc.get("checks", []) if c["status"] == "fail"})
            switch = doc.get("subject", {}).get("switch_seconds")
            if intended is None:
                ok = code == 0
                verdict = "pass" if ok else f"FALSE ALARM ({', '.join(failing) or f'exit {code}'})"
            else:
                ok = code == 1 and failing == [intended]
                verdict = f"flagged by {', '.join(failing)}" if code == 1 else f"MISSED (exit {code})"
            rows.append(
                dict(case=name, release=to, intended=intended, exit=code, failing=failing, ok=ok, switch_s=switch)
            )
            shown = f"switch {switch:.2f}s" if isinstance(switch, (int, float)) else "no switch"
            print(f"{'ok  ' if ok else 'BAD '} {name:<40} {to:<7} exit {code}  {verdict:<34} {shown}, {seconds:.1f}s")
            repo.git("checkout", "-q", "--", ".")  # today's code back as committed (a lost cache stays lost: last)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    broken = [r for r in rows if r["intended"]]
    healthy = [r for r in rows if not r["intended"]]
    flagged = sum(r["ok"] for r in broken)
    false_alarms = sum(not r["ok"] for r in healthy)
    switches = [r["switch_s"] for r in rows if isinstance(r["switch_s"], (int, float))]
    internal = sum(r["exit"] == 3 for r in rows)
    print(
        f"rollback: {flagged}/{len(broken)} unservable releases flagged by the intended check, "
        f"{false_alarms}/{len(healthy)} false alarms on servable releases, {internal} exit 3; "
        f"switch (fetch + load + export + first inference, not judged) median "
        f"{statistics.median(switches):.2f}s, max {max(switches):.2f}s over {len(switches)} drills"
    )
    figures = {
        "cases": rows,
        "flagged": flagged,
        "regressions": len(broken),
        "false_alarms": false_alarms,
        "healthy": len(healthy),
        "exit_3": internal,
        "switch_median_s": statistics.median(switches),
        "switch_max_s": max(switches),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if flagged == len(broken) and false_alarms == 0 and internal == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
