"""The bundled example's data checks, on a copy of it: the spirals through their data spec (DVC-pinned here by a
real `dvc add`) and the reference points through their pandera model; and the help stays free of pandas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_checks.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples"


@pytest.fixture
def example(tmp_path: Path, git_repo: Any, compare_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example's data files and config in a git repository of its own, the spirals made by its prepare stage
    and added to DVC, as `dvc repro prepare` would leave them."""
    repo = git_repo.init(tmp_path / "example")
    for name in ("pyproject.toml", "data_spec.py", "data_schema.py", "params.yaml", "reference", "src"):
        src = EXAMPLE / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo.path / name)
    monkeypatch.chdir(repo.path)
    prepare(repo)
    repo.run(sys.executable, "-m", "dvc", "init", "-q")
    repo.run(sys.executable, "-m", "dvc", "add", "-q", "data/spirals.npz")
    repo.commit(message="the example's data")
    return repo


def prepare(repo: Any, **params: Any) -> None:
    doc = yaml.safe_load((repo.path / "params.yaml").read_text())
    doc["prepare"].update(params)
    (repo.path / "params.yaml").write_text(yaml.safe_dump(doc))
    subprocess.run([sys.executable, "src/prepare.py"], cwd=repo.path, check=True, capture_output=True)


def run(*argv: str) -> tuple[int, dict[str, Any]]:
    out = Path("out.json")
    out.unlink(missing_ok=True)
    code = main([*argv, "--quiet", "--format", "json", "--output", str(out)])
    return code, json.loads(out.read_text()) if out.exists() else {}


def test_the_example_passes_then_a_fourth_class_fails_and_drifts_against_the_dvc_pinned_data(example):
    code, doc = run("data-check")
    assert code == 0, [f["message"] for c in doc["checks"] for f in c["findings"]]
    assert [c["check"] for c in doc["checks"]] == ["data: spirals/train", "data: spirals/test", "data: points"]
    code, doc = run("data-stats", "--base", "HEAD")
    assert code == 0
    drift = {c["check"]: c for c in doc["checks"] if c["figures"]["role"] == "drift"}
    assert set(drift) == {"drift: spirals/train", "drift: spirals/test", "drift: points"}
    assert all(f["verdict"] == "unchanged" for c in drift.values() for f in c["figures"]["features"])

    prepare(example, classes=4)  # the working tree's data changes; git and DVC still pin the 3-class version
    assert example.git("status", "--porcelain", "--", "data") == ""  # DVC tracks it, not git
    code, doc = run("data-check", "spirals")
    assert code == 1
    train = next(c for c in doc["checks"] if c["check"] == "data: spirals/train")
    assert {f["expectation"] for f in train["figures"]["failures"]} >= {"labels: in classes ['0', '1', '2']"}
    code, doc = run("data-stats", "--base", "HEAD", "spirals")
    assert code == 1
    drift = {c["check"]: c for c in doc["checks"] if c["figures"]["role"] == "drift"}
    label = next(f for f in drift["drift: spirals/train"]["figures"]["features"] if f["feature"] == "label")
    assert label["verdict"] == "changed" and label["added"] == ["3"]
    assert main(["report", "out.json", "--output", "report.md"]) == 0
    assert "**Drift of `spirals/train`**" in Path("report.md").read_text()


@pytest.mark.parametrize("command", ["data-check", "data-stats"])
def test_help_imports_no_data_library(command):
    code = (
        "import sys\n"
        "from ci_checks.main import main\n"
        "try:\n"
        f"    main([{command!r}, '--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = ('torch', 'pandas', 'pandera', 'pyarrow', 'polars', 'dvc', 'numpy', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert proc.stdout.splitlines()[-1] == "[]"
