"""ci-checks quality on a small real project (pandas metadata, a trained MLP), alone and against the base revision."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ci_checks.main import main

from quality_project import files


def _write(folder: Path, contents: dict[str, str]) -> None:
    for name, text in contents.items():
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_BASE_REF"):
        monkeypatch.delenv(key, raising=False)
    _write(tmp_path, files())
    return tmp_path


def _run(*argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["quality", "--quiet", "--format", "json", "--output", "results.json", *argv])
    with open("results.json", encoding="utf-8") as fh:
        return code, json.load(fh)


def _check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["check"] == name)


def test_a_well_trained_model_passes_every_suite(project: Path) -> None:
    code, doc = _run("--plots-dir", "plots")
    assert code == 0, doc
    assert (project / "plots" / "quality-reliability.png").read_bytes().startswith(b"\x89PNG")
    slices = _check(doc, "quality slices")["figures"]
    rows = {r["slice"]: r for r in slices["rows"]}
    assert set(rows) == {"(all)", "north", "x0-high"}
    assert rows["(all)"]["n"] == 600 and 0 < rows["north"]["n"] < 600
    lo, hi = rows["north"]["metrics"]["accuracy"]["ci"]
    assert lo <= rows["north"]["metrics"]["accuracy"]["value"] <= hi
    behaviour = {r["test"]: r for r in _check(doc, "quality behaviour")["figures"]["rows"]}
    assert set(behaviour) == {"inv-nuisance", "dir-x0", "mft-obvious"}
    assert behaviour["mft-obvious"]["failures"] == 0
    calibration = _check(doc, "quality calibration")["figures"]
    assert 0 <= calibration["ece"] < 0.1 and calibration["bins"]
    assert calibration["threshold"] is not None and calibration["coverage"] > 0.5


@pytest.mark.parametrize(
    ("project_files", "check", "words"),
    [
        pytest.param({"floor": 0.999}, "quality slices", "below the declared floor", id="slice-floor"),
        pytest.param({"nuisance": 40.0, "steps": 20}, "quality behaviour", "INV 'inv-nuisance'", id="invariance"),
        pytest.param({"temperature": 0.1, "extra": "max-ece = 0.05"}, "quality calibration", "above max-ece", id="ece"),
    ],
)
def test_a_declared_threshold_that_fails_exits_1(
    project: Path, project_files: dict[str, Any], check: str, words: str
) -> None:
    _write(project, files(**project_files))
    code, doc = _run()
    assert code == 1
    failed = _check(doc, check)
    assert failed["status"] == "fail"
    assert any(words in f["message"] for f in failed["findings"]), failed["findings"]


def test_mined_hard_examples_become_a_suite_that_quality_and_golden_keep(
    project: Path, write_spec: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _run("--mine", "5", "--suite-name", "hard", "--failure", "near the class boundary")
    assert code == 0
    rows = _check(doc, "quality mine hard")["figures"]["rows"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in rows] == sorted((r["loss"] for r in rows), reverse=True)
    suite = json.loads((project / "golden" / "hard.quality.json").read_text())
    assert suite["ids"] == [r["id"] for r in rows] and suite["failure"] == "near the class boundary"
    code, doc = _run()
    assert code == 0
    kept = _check(doc, "quality suite hard")
    assert kept["figures"]["n"] == 5 and "near the class boundary" in kept["summary"]
    # golden reads the same inputs file: record, then compare (the training spec's model takes 4 features too)
    write_spec()
    golden = ["golden", "--spec", "ci_spec.py:good", "--suite", "hard=golden/hard.pt", "--quiet"]
    assert main([*golden[:-1], "--update"]) == 0
    assert main(golden[:-1]) == 0
    assert "golden hard" in capsys.readouterr().out


def test_mining_never_replaces_a_file_it_did_not_write(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "golden").mkdir()
    (project / "golden" / "hard.pt").write_bytes(b"the team's own inputs")
    assert main(["quality", "--quiet", "--mine", "3", "--suite-name", "hard"]) == 2
    assert "was not written by ci-checks quality --mine" in capsys.readouterr().err
    assert (project / "golden" / "hard.pt").read_bytes() == b"the team's own inputs"


# ---------------------------------------------------------------- against the base revision


@pytest.fixture
def committed(project: Path, git_repo: Any) -> Any:
    repo = git_repo.init(project)
    repo.commit(message="base: a well-trained model")
    return repo


def test_a_degraded_slice_regresses_against_the_base_even_with_a_looser_gate(committed: Any) -> None:
    """The pull request corrupts one region's labels, drops that slice from its spec and sets fail-on = never in
    its own pyproject.toml: the base's gate and the base's slice still judge it, and the slice is named."""
    changed = files(corrupt="north", floor=0.0, extra='fail-on = "never"')
    dropped = changed["quality_spec.py"].replace('"north": {"column": "region", "equals": "north"},', "")
    assert dropped != changed["quality_spec.py"]
    _write(committed.path, {**changed, "quality_spec.py": dropped})
    code, doc = _run("--base", "HEAD")
    assert code == 1, [f["message"] for c in doc["checks"] for f in c["findings"]]
    rows = {r["slice"]: r for r in _check(doc, "quality slices")["figures"]["rows"]}
    assert rows["north"]["compared"]["accuracy"]["verdict"] == "regressed"
    assert rows["north"]["note"].startswith("dropped by this change")
    assert any("slice 'north'" in f["message"] for f in _check(doc, "quality slices")["findings"])
    assert doc["subject"]["policy"]["source"].startswith("HEAD (")
    assert {c["key"] for c in doc["subject"]["policy"]["changes"]} >= {"quality.fail-on"}
    flips = _check(doc, "quality flips")["figures"]
    assert flips["flips"] > 0 and flips["by_class"]
    assert not [p for p in os.listdir(committed.path) if p.startswith("ci-checks-quality")]
    assert committed.git("worktree", "list").count("\n") == 1  # the base's worktree is gone


def test_a_model_retrained_with_another_seed_is_no_regression(committed: Any) -> None:
    _write(committed.path, files(seed=1))
    code, doc = _run("--base", "HEAD")
    assert code == 0, [f["message"] for c in doc["checks"] for f in c["findings"]]
    flips = _check(doc, "quality flips")["figures"]
    assert flips["n"] == 600
    verdicts = [r["compared"]["accuracy"]["verdict"] for r in _check(doc, "quality slices")["figures"]["rows"]]
    assert "regressed" not in verdicts


def test_a_base_without_a_quality_spec_is_no_baseline(project: Path, git_repo: Any) -> None:
    repo = git_repo.init(project)
    repo.commit({"pyproject.toml": ""}, message="before quality specs")
    _write(project, files())
    code, doc = _run("--base", "HEAD")
    assert code == 0
    assert "no quality spec" in _check(doc, "quality base")["summary"]


def test_the_example_reports_its_quality_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled example as shipped: its quality spec, two slices, INV and DIR, its mined suite, in the report."""
    example = Path(__file__).resolve().parents[2] / "examples"
    monkeypatch.chdir(example)
    for key in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(key, raising=False)
    results, report = tmp_path / "quality.json", tmp_path / "report.md"
    assert main(["quality", "--quiet", "--format", "json", "--output", str(results)]) == 0
    assert main(["report", str(results), "--output", str(report)]) == 0
    text = report.read_text()
    assert "### Model quality" in text
    for name in ("`centre`", "`left`", "`inv-jitter`", "`dir-toward-own-arm`", "`hard-examples`"):
        assert name in text, name


PYPROJECT_CHECKPOINT = '[tool.ci-checks.quality]\nspec = "quality_spec.py:quality_spec"\nbootstrap = 200\n'
CHECKPOINT_SPEC = """
import torch
from torch import nn


def quality_spec():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=gen)
    return {
        "checkpoint": "models/model.pt",
        "model_factory": lambda: nn.Linear(4, 3),
        "state_key": "model",
        "dataset": (x, x[:, :3].argmax(1)),
        "metrics": ["accuracy"],
    }
"""


def test_a_dvc_tracked_checkpoint_is_checked_out_on_both_sides(tmp_path: Path, git_repo: Any, monkeypatch) -> None:
    """The model is a DVC-tracked artifact that is not in the checkout: this change's comes from `dvc checkout`, the
    base's worktree gets it from the same DVC cache."""
    import torch
    from torch import nn

    pytest.importorskip("dvc")
    repo = git_repo.init(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_BASE_REF", raising=False)
    _write(tmp_path, {"quality_spec.py": CHECKPOINT_SPEC, "pyproject.toml": PYPROJECT_CHECKPOINT})
    torch.manual_seed(0)
    (tmp_path / "models").mkdir()
    torch.save({"model": nn.Linear(4, 3).state_dict()}, tmp_path / "models" / "model.pt")
    repo.run(sys.executable, "-m", "dvc", "init", "-q")
    repo.run(sys.executable, "-m", "dvc", "add", "-q", "models/model.pt")
    repo.commit(message="the served model, tracked by DVC")
    (tmp_path / "models" / "model.pt").unlink()
    code, doc = _run("--base", "HEAD")
    assert code == 0, [f["message"] for c in doc["checks"] for f in c["findings"]]
    assert (tmp_path / "models" / "model.pt").is_file()  # checked out from the DVC cache
    flips = _check(doc, "quality flips")["figures"]
    assert flips["n"] == 200 and flips["flips"] == 0  # the base's worktree loaded the same weights


def test_a_model_that_ends_in_a_softmax_declares_it() -> None:
    import torch
    from torch import nn

    from ci_checks.quality import QualitySpec
    from ci_checks.quality.evaluate import evaluate
    from ci_checks.quality.spec import validate

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    x = torch.randn(50, 4)
    spec = validate(
        QualitySpec(model=lambda: net, dataset=(x, torch.zeros(50, dtype=torch.long)), outputs="probabilities")
    )
    with torch.no_grad():
        expected = net(x).double().numpy()
    assert abs(evaluate(spec).probs - expected).max() < 1e-6  # renormalized in float64
    spec.outputs = "logits"  # a softmax of probabilities: flattened towards uniform, so the calibration would lie
    assert abs(evaluate(spec).probs - expected).max() > 0.05


def test_an_interrupted_comparison_exits_130_and_leaves_no_worktree(committed: Any) -> None:
    """Ctrl-C while the base's suites run: the child is stopped, the worktree and its temporary folder removed."""
    import signal
    import subprocess
    import tempfile
    import time

    _write(committed.path, files(seed=1))
    before = set(os.listdir(tempfile.gettempdir()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_checks", "quality", "--base", "HEAD", "--quiet"],
        cwd=committed.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120  # a safety cap while waiting for the worktree, never a verdict
    while committed.git("worktree", "list").count("\n") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert committed.git("worktree", "list").count("\n") == 1
    left = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("ci-checks-quality-")}
    assert not left
