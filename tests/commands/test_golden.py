"""golden: record outputs on committed inputs, then compare per suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ci_checks.main import main

ROOT = Path(__file__).resolve().parents[2]
SPEC = f"{ROOT / 'examples' / 'ci_spec.py'}:training_spec"


@pytest.fixture
def suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    torch.save(torch.randn(10, 2, generator=g) * 0.1, tmp_path / "near-origin.pt")
    torch.save(torch.randn(12, 2, generator=g), tmp_path / "outer-arms.pt")
    return ["--suite", "near-origin=near-origin.pt", "--suite", "outer-arms=outer-arms.pt"]


def test_update_then_compare_passes_per_suite(suites: list[str], tmp_path: Path) -> None:
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 0
    recorded = np.load(tmp_path / "golden" / "outer-arms.expected.npz")
    assert recorded["arr_0"].shape == (12, 3)
    assert main(["golden", "--spec", SPEC, *suites, "--format", "json", "--output", "g.json"]) == 0
    doc = json.loads((tmp_path / "g.json").read_text())
    assert [c["check"] for c in doc["checks"]] == ["golden near-origin", "golden outer-arms"]
    assert doc["checks"][1]["figures"]["changed_predictions"] == 0


def test_drift_reports_changed_classes_and_fails(suites: list[str], tmp_path: Path) -> None:
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 0
    weights = tmp_path / "other.pt"
    torch.manual_seed(123)
    import sys

    sys.path.insert(0, str(ROOT / "examples" / "src"))
    from model import SpiralNet

    torch.save(SpiralNet(hidden=64, dropout=0.1).state_dict(), weights)
    code = main(
        ["golden", "--spec", SPEC, *suites, "--weights", str(weights), "--format", "json", "--output", "g.json"]
    )
    assert code == 1
    doc = json.loads((tmp_path / "g.json").read_text())
    finding = doc["checks"][1]["findings"][0]["message"]
    assert "drifted" in finding and "predictions changed class" in finding and "--update" in finding


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param("no-record", "no recorded outputs for suite", id="not-recorded"),
        pytest.param("wrong-shape-inputs", "the golden inputs do not fit the model", id="wrong-inputs"),
        pytest.param("wrong-shape-record", "recorded outputs have shapes", id="wrong-record"),
        pytest.param("missing-inputs", "not found", id="missing-inputs"),
    ],
)
def test_bad_golden_files_exit_2(
    suites: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    if setup == "wrong-shape-inputs":
        torch.save(torch.randn(4, 5), tmp_path / "outer-arms.pt")
        main(["golden", "--spec", SPEC, "--suite", "near-origin=near-origin.pt", "--update"])
    elif setup == "wrong-shape-record":
        main(["golden", "--spec", SPEC, *suites, "--update"])
        np.savez_compressed(tmp_path / "golden" / "outer-arms.expected.npz", np.zeros((12, 5), np.float32))
    elif setup == "missing-inputs":
        main(["golden", "--spec", SPEC, *suites, "--update"])
        (tmp_path / "outer-arms.pt").unlink()
    assert main(["golden", "--spec", SPEC, *suites]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_suites_from_pyproject(tmp_path: Path, suites: list[str]) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.ci-checks]\nspec = "{SPEC}"\n[tool.ci-checks.golden]\ndir = "g"\n'
        'suites = { near-origin = "near-origin.pt" }\n'
    )
    assert main(["golden", "--update"]) == 0
    assert (tmp_path / "g" / "near-origin.expected.npz").exists()
    (tmp_path / "pyproject.toml").write_text("[tool.ci-checks.golden]\nsuite = {}\n")
    assert main(["golden", "--spec", SPEC]) == 2


def test_format_from_pyproject_and_config_option(tmp_path: Path, suites: list[str], capsys) -> None:
    """[tool.ci-checks] format is honoured by golden as by every command, and --config picks the file."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "pyproject.toml").write_text(f'[tool.ci-checks]\nspec = "{SPEC}"\nformat = "json"\n')
    assert main(["golden", "--config", str(conf / "pyproject.toml"), *suites, "--update"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "golden" and doc["status"] == "pass"
    assert main(["golden", "--config", str(conf / "pyproject.toml"), *suites, "--format", "text"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("golden: PASS")
