"""benchmarks/data_bugs: the docs show the figures of its last full run, and its detection runs on small data."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("data_bugs_benchmark", ROOT / "benchmarks" / "data_bugs" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_the_docs_hold_the_figures_of_the_last_full_run():
    bench = _benchmark()
    figures = json.loads(Path(bench.RESULTS).read_text(encoding="utf-8"))
    assert figures["summary"]["corruptions"] == 16 and figures["memory"], "a full run, not a partial one"
    assert bench.docs_block(figures) in (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")


def test_detection_on_small_data(tmp_path, monkeypatch):
    """At a tenth of the benchmark's size: every table corruption caught, no clean twin alarmed."""
    monkeypatch.chdir(tmp_path)
    results = _benchmark().detection(2_000, 400, str(tmp_path))
    corruptions = {name: r for name, r in results.items() if not r["twin"]}
    twins = {name: r for name, r in results.items() if r["twin"]}
    assert len(corruptions) == 8 and len(twins) == 2
    assert all(r["table"]["hit"] for r in corruptions.values()), {n: r["table"] for n, r in corruptions.items()}
    assert sum(bool(r["images"]["hit"]) for r in corruptions.values()) >= 7
    assert not any(r[family]["fired"] for r in twins.values() for family in ("table", "images")), twins
