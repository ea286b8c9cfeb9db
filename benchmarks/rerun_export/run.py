"""Measure ci-checks rerun and export-parity.

Prints: the time of a full CPU replay of the example's recorded run against running its pipeline directly
(`dvc repro --force`, the same work without ci-checks' workspace, data restore and comparison), as a ratio and as
fixed seconds; and export-parity time and parity figures for the example model and a mid-size CNN.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "DVC_NO_ANALYTICS": "1",
    "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
}

CNN_SPEC = textwrap.dedent('''
    import torch
    from torch import nn


    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))


    class MidCNN(nn.Module):
        """A VGG-style CNN, 4 blocks, 603k parameters, on 3x64x64 images."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 128))
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 4 * 4, 10))

        def forward(self, x):
            return self.head(self.features(x))


    def spec():
        g = torch.Generator().manual_seed(0)
        return {"model_factory": MidCNN, "optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.01),
                "loss_fn": nn.functional.cross_entropy,
                "batch": (torch.randn(16, 3, 64, 64, generator=g), torch.randint(0, 10, (16,), generator=g))}
    ''')


def sh(cwd: Path, *cmd: str) -> str:
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=True).stdout


def timed(cwd: Path, *cmd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def recorded_repo(base: Path) -> Path:
    repo = base / "project"
    shutil.copytree(
        ROOT / "examples",
        repo,
        ignore=shutil.ignore_patterns("data", "models", "metrics", "plots", "__pycache__", "tests", "*.py[co]"),
    )
    (repo / ".gitignore").write_text(".ci-checks/\n__pycache__/\n")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, sys.executable, "-m", "dvc", "init", "-q")
    sh(repo, sys.executable, "-m", "dvc", "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "record run v1")
    sh(repo, "git", "tag", "v1")
    return repo


def bench_rerun(repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = recorded_repo(Path(tmp))
        direct, replay = [], []
        for _ in range(repeat):
            # The same pipeline, forced, in the project itself: what a user would run by hand.
            direct.append(timed(repo, sys.executable, "-m", "dvc", "repro", "--force", "-q"))
            sh(repo, "git", "checkout", "-q", "--", ".")
            replay.append(
                timed(
                    repo,
                    sys.executable,
                    "-m",
                    "ci_checks",
                    "rerun",
                    "--ref",
                    "v1",
                    "--device",
                    "cpu",
                    "--quiet",
                    "--format",
                    "json",
                    "--output",
                    str(Path(tmp) / "r.json"),
                )
            )
        doc = json.loads((Path(tmp) / "r.json").read_text())
    d, r = min(direct), min(replay)
    return {"direct_s": d, "replay_s": r, "ratio": r / d, "overhead_s": r - d, "status": doc["status"]}


def bench_export(spec: str, label: str) -> dict[str, object]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "ci_checks", "export-parity", "--spec", spec, "--format", "json"],
        env=ENV,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    doc = json.loads(out.stdout)
    by = {c["check"]: c for c in doc["checks"]}
    parity = by.get("onnx-parity", {}).get("figures", {})
    latency = by.get("onnx-latency", {}).get("figures", {})
    return {
        "model": label,
        "seconds": seconds,
        "export_s": by["onnx-export"]["figures"].get("seconds"),
        "max_abs_diff": parity.get("max_abs_diff"),
        "worst_input": parity.get("worst_input"),
        "torch_ms": latency.get("torch_ms"),
        "ort_ms": latency.get("onnxruntime_ms"),
        "status": doc["status"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="replays and direct runs each; the minimum is kept")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    r = bench_rerun(args.repeat)
    print("\nrerun: full CPU replay of the example's recorded run (3 DVC stages), best of", args.repeat)
    print(f"  pipeline directly (dvc repro --force): {r['direct_s']:.2f} s")
    print(f"  ci-checks rerun --ref v1:              {r['replay_s']:.2f} s  (verdict: {r['status']})")
    print(f"  overhead: {r['ratio']:.2f}x, {r['overhead_s']:+.2f} s (target: under 1.2x plus a fixed few seconds)")
    with tempfile.TemporaryDirectory() as tmp:
        cnn = Path(tmp) / "cnn_spec.py"
        cnn.write_text(CNN_SPEC)
        rows = [
            bench_export(f"{ROOT / 'examples' / 'ci_spec.py'}:training_spec", "example SpiralNet (4.7k params)"),
            bench_export(f"{cnn}:spec", "mid-size CNN (603k params, 3x64x64)"),
        ]
    print("\nexport-parity (fresh process, torchscript exporter, 4 inputs: the batch, fresh at batch 1, N, 2N+1)")
    print(f"  {'model':38} {'total s':>8} {'export s':>9} {'max abs diff':>13} {'torch ms':>9} {'ort ms':>8}  verdict")
    for row in rows:
        print(
            f"  {row['model']:38} {row['seconds']:8.2f} {row['export_s']:9.2f} {row['max_abs_diff']:13.3g} "
            f"{row['torch_ms']:9.3f} {row['ort_ms']:8.3f}  {row['status']}"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
