"""golden: record outputs on committed inputs, then compare per suite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def _recordings(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_update_is_all_or_nothing_across_suites(suites: list[str], tmp_path: Path, capsys) -> None:
    """The second suite does not fit the model: the first suite's recording is not replaced either."""
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 0
    before = _recordings(tmp_path / "golden")
    g = torch.Generator().manual_seed(1)
    torch.save(torch.randn(10, 2, generator=g), tmp_path / "near-origin.pt")  # would record new outputs
    torch.save(torch.randn(4, 5), tmp_path / "outer-arms.pt")  # the model rejects it
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 2
    assert "the golden inputs do not fit the model" in capsys.readouterr().err
    assert _recordings(tmp_path / "golden") == before


def test_an_update_keeps_the_previous_recording_as_a_backup(suites: list[str], tmp_path: Path) -> None:
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 0
    first = (tmp_path / "golden" / "near-origin.expected.npz").read_bytes()
    g = torch.Generator().manual_seed(1)
    torch.save(torch.randn(10, 2, generator=g), tmp_path / "near-origin.pt")
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 0
    assert (tmp_path / "golden" / "near-origin.expected.npz.bak").read_bytes() == first
    assert (tmp_path / "golden" / "near-origin.expected.npz").read_bytes() != first
    assert sorted(p.name for p in (tmp_path / "golden").iterdir()) == [
        "near-origin.expected.npz",
        "near-origin.expected.npz.bak",
        "outer-arms.expected.npz",
        "outer-arms.expected.npz.bak",
    ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(lambda p: p.write_bytes(b""), "not a recording written by ci-checks golden", id="empty"),
        pytest.param(lambda p: p.write_bytes(b"PK\x03\x04garbage"), "not a recording written by", id="corrupt"),
        pytest.param(lambda p: (p.unlink(), p.mkdir()), "is a folder, not the recorded outputs", id="folder"),
        pytest.param(
            lambda p: np.savez(p.open("wb"), weights=np.zeros(3)), "holds ['weights'], not arr_0", id="other-keys"
        ),
        pytest.param(
            lambda p: np.save(p.open("wb"), np.array([{}], dtype=object), allow_pickle=True),
            "not a recording written by",
            id="pickled",
        ),
    ],
)
def test_a_damaged_recording_is_bad_input(
    suites: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, message: str
) -> None:
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 0
    damage(tmp_path / "golden" / "outer-arms.expected.npz")
    assert main(["golden", "--spec", SPEC, *suites]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ci-checks: error: ") and message in err and err.count("\n") == 1, err
    assert "--update" in err


@pytest.mark.parametrize("name", ["night/time", "..", ".hidden", "tab\there", ""])
def test_a_suite_name_that_is_no_file_name_is_bad_input(
    suites: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["golden", "--spec", SPEC, "--suite", f"{name}=near-origin.pt", "--update"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("cannot be a file name" in err or "expected NAME=INPUTS.pt" in err), err
    assert not (tmp_path / "golden").exists() or not any((tmp_path / "golden").iterdir())


PAUSE = """
import importlib, os, sys, threading
from ci_checks.main import main

control, where = sys.argv[1], sys.argv[2]
module, _, attr = where.rpartition(".")
target = importlib.import_module(module)
real = getattr(target, attr)

def paused(*args, **kwargs):
    open(os.path.join(control, "paused"), "w").close()
    for _ in range(3000):  # a signal the kit holds does not end this wait: the test then writes "go"
        if os.path.exists(os.path.join(control, "go")):
            break
        threading.Event().wait(0.02)
    return real(*args, **kwargs)

setattr(target, attr, paused)
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize(
    ("where", "sig", "replaced"),
    [
        pytest.param("ci_checks.engine.tree.output_tensors", signal.SIGINT, False, id="computing-SIGINT"),
        pytest.param("numpy.savez_compressed", signal.SIGINT, False, id="writing-SIGINT"),
        pytest.param("numpy.savez_compressed", signal.SIGTERM, False, id="writing-SIGTERM"),
        pytest.param("ci_checks._io._keep", signal.SIGINT, True, id="swapping-SIGINT"),
    ],
)
def test_an_interrupted_update_leaves_every_recording_whole(
    suites: list[str], tmp_path: Path, where: str, sig: signal.Signals, replaced: bool
) -> None:
    """Interrupted while computing or writing: every recording as it was. Interrupted while the files are swapped:
    the swap finishes first (all new, with backups). Never a temporary file left, never a traceback."""
    assert main(["golden", "--spec", SPEC, *suites, "--update"]) == 0
    before = _recordings(tmp_path / "golden")
    g = torch.Generator().manual_seed(1)
    torch.save(torch.randn(10, 2, generator=g), tmp_path / "near-origin.pt")
    torch.save(torch.randn(12, 2, generator=g), tmp_path / "outer-arms.pt")
    control = tmp_path / "control"
    control.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSE, str(control), where, "golden", "--spec", SPEC, *suites, "--update"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (control / "paused").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the update never reached the pause"
        time.sleep(0.01)
    proc.send_signal(sig)
    (control / "go").write_text("")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "ci-checks: interrupted" in err and "Traceback" not in err
    after = _recordings(tmp_path / "golden")
    assert not [n for n in after if n.startswith(".ci-checks-tmp-")]
    if replaced:
        assert {n: after[n + ".bak"] for n in before} == before
        assert all(after[n] != before[n] for n in before)
    else:
        assert after == before
