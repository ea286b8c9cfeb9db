"""docs/benchmarks.md shows the model_quality figures of the last run (benchmarks/model_quality/results.json)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _benchmark() -> Any:
    path = ROOT / "benchmarks" / "model_quality" / "run.py"
    spec = importlib.util.spec_from_file_location("model_quality_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_the_docs_hold_the_figures_of_the_last_run() -> None:
    bench = _benchmark()
    figures = json.loads(bench.RESULTS.read_text(encoding="utf-8"))
    assert figures["scenarios"] and figures["example"]  # a full run
    assert bench.docs_block(figures) in (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")


def test_the_rendering_names_every_regression_and_the_twins() -> None:
    bench = _benchmark()
    row = {"flagged": [], "seconds": 1.0, "flip_rate": 0.01, "false_alarm": False, "caught": None, "intended": None}
    figures = {
        "date": "2026-01-01",
        "cpus": 2,
        "load": [1.0, 2.0],
        "scenarios": [
            {
                **row,
                "scenario": "slice",
                "intended": "quality slices",
                "caught": True,
                "flagged": ["quality slices"],
                "false_alarm": None,
                "figures": {"slice": "r", "slice_n": 9, "slice_accuracy": {}, "whole_accuracy": {}},
            },
            {**row, "scenario": "twin", "figures": {}},
        ],
        "example": {"seconds": 20.0, "exit_code": 0},
        "rollback": ["rollback: 4/4 flagged"],
    }
    block = bench.docs_block(figures)
    assert "| slice | caught | slices |" in block and "1 twins" in block and "| 1/1 |" in block
    assert "| 0/1 |" in block and "20.0 s, exit 0" in block and "4/4 flagged" in block
