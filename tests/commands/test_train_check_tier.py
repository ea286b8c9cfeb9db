"""train-check --export-parity --golden: the CPU tier in one process, one results document, one exit code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from ci_checks.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
SPEC = f"{ROOT / 'examples' / 'ci_spec.py'}:training_spec"
FAST = ["--checks", "parameter-updates,finite-values", "--quiet"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose pyproject declares one golden suite of the example's model, recorded by ci-checks golden."""
    monkeypatch.chdir(tmp_path)
    torch.save(torch.randn(6, 2, generator=torch.Generator().manual_seed(0)), tmp_path / "arms.pt")
    (tmp_path / "pyproject.toml").write_text('[tool.ci-checks.golden]\nsuites = { arms = "arms.pt" }\n')
    assert main(["golden", "--spec", SPEC, "--update", "--quiet"]) == 0
    return tmp_path


def test_one_process_runs_training_checks_export_parity_and_golden(project: Path) -> None:
    code = main(["train-check", "--spec", SPEC, *FAST, "--export-parity", "--golden", "--output", "r.json"])
    assert code == 0
    doc = json.loads((project / "r.json").read_text())
    assert [c["check"] for c in doc["checks"]] == [
        "parameter-updates",
        "finite-values",
        "onnx-export",
        "onnx-parity",
        "onnx-latency",
        "golden arms",
    ]
    assert doc["command"] == "train-check" and doc["status"] == "pass"
    assert doc["subject"]["export_parity"]["exporter"] == "torchscript"
    assert doc["subject"]["golden"]["update"] is False


def test_a_drifted_golden_suite_fails_the_combined_run(project: Path) -> None:
    recording = project / "golden" / "arms.expected.npz"
    import numpy as np

    with np.load(recording) as data:
        arrays = [data[k] + 1.0 for k in sorted(data.files)]
    np.savez(recording, *arrays)
    code = main(["train-check", "--spec", SPEC, *FAST, "--golden", "--output", "r.json"])
    assert code == 1
    doc = json.loads((project / "r.json").read_text())
    golden = next(c for c in doc["checks"] if c["check"] == "golden arms")
    assert golden["status"] == "fail" and "drifted" in golden["findings"][0]["message"]
    assert [c["status"] for c in doc["checks"][:2]] == ["pass", "pass"]  # the training checks' verdicts are kept


def test_golden_without_suites_is_bad_input_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.ci-checks]\n")
    assert main(["train-check", "--spec", SPEC, *FAST, "--golden"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--golden: no golden suites under [tool.ci-checks.golden]" in err[0]


def test_the_summary_line_gives_the_process_time_beside_the_checks_time(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train-check", "--spec", SPEC, *FAST, "--output", "r.json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("train-check: PASS - 2 passed, 0 warned, 0 failed, 0 skipped in ")
    assert last.endswith("s, with start-up and imports)") and "(process " in last
    doc = json.loads((project / "r.json").read_text())
    # This test process started before the checks ran, so its time is at least theirs.
    assert doc["subject"]["process_seconds"] >= doc["subject"]["training_seconds"]


def test_every_command_accepts_quiet() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.choices, "no subcommands"
    missing = [name for name, p in sub.choices.items() if "--quiet" not in p._option_string_actions]
    assert missing == []


BROKEN = """
import torch
from torch import nn


def spec():
    def model_factory():
        return nn.Linear(2, 3) / 0  # raises TypeError in the user's factory

    return {
        "model_factory": model_factory,
        "optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.1),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (torch.randn(8, 2), torch.randint(0, 3, (8,))),
    }
"""


@pytest.mark.parametrize("command", ["export-parity", "golden", "train-check"])
def test_a_factory_that_raises_is_a_finding_in_every_command(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text(BROKEN)
    torch.save(torch.randn(4, 2), tmp_path / "x.pt")
    (tmp_path / "pyproject.toml").write_text('[tool.ci-checks.golden]\nsuites = { x = "x.pt" }\n')
    extra = ["--export-parity", "--golden", "--checks", "parameter-updates"] if command == "train-check" else []
    assert main([command, "--spec", "broken.py:spec", "--quiet", *extra, "--output", "r.json"]) == 1
    out = capsys.readouterr().out
    assert "model_factory() raised TypeError" in out and "broken.py:" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["status"] == "fail" and not doc["subject"].get("internal_errors")
