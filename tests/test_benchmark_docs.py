"""The overhead figures in the README and docs/benchmarks.md are the ones benchmarks/overhead/results.json renders."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("overhead_benchmark", ROOT / "benchmarks" / "overhead" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_the_docs_hold_the_figures_of_the_last_run() -> None:
    bench = _benchmark()
    figures = json.loads(bench.RESULTS.read_text(encoding="utf-8"))
    assert figures.get("cases") and figures.get("scaling") and figures.get("tier")  # a full run, not a partial one
    assert bench.docs_block(figures) in (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert bench.readme_block(figures) in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_rendering_reports_every_measure() -> None:
    bench = _benchmark()
    row = {"params": 7402, "batch": 8, "steps": 20, "ratio": 1.4, "cpu_ratio": 1.3, "error": ""}
    tier = {
        "steps": 44,
        "seconds": {"combined": 3.0, "bare": 2.5, "separate": 7.0},
        "cpu_seconds": {"combined": 2.9, "bare": 2.4, "separate": 6.8},
        "combined_over_bare": 1.2,
        "combined_over_bare_cpu": 1.21,
        "separate_over_combined": 2.33,
    }
    block = bench.docs_block({"cases": [row], "scaling": [row], "tier": tier, "repeats": 5, "threads": 1})
    assert "CPU time median 1.30x" in block and "1.21x CPU time" in block and "2.33x wall clock" in block
    assert "| 7,402 | 1.30x (20 steps) |" in block
    readme = bench.readme_block({"cases": [row], "tier": tier})
    assert "a median 1.30x" in readme and "1.21x the CPU time" in readme
