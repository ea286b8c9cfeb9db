"""The bad-input sweep: every command, given input that is the user's to fix, exits 2 with one line and no traceback.

Exit 3 is reserved for bugs of ci-checks; a case here that exits 3 (or 0, or crashes the process) is a bug. Cases
whose fix belongs to a module another change owns are marked xfail(strict=True): they fail the suite as soon as they
are fixed, so the mark cannot outlive the bug.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci_checks.main import main

SPECS = """
def meta_batch():
    x, y = good()["batch"]
    return {**good(), "batch": (x.to("meta"), y.to("meta"))}


def batch_dim_past_the_inputs():
    return {**good(), "batch_dim": 5}


def huge_seed():
    return {**good(), "seed": 2**70}


def quality_good():
    x, y = synthetic_batch((4,), batch_size=16, num_classes=3)
    return {"model": _mlp, "dataset": {"inputs": x, "targets": y, "metadata": {"group": [0, 1] * 8}}}


def quality_no_dataset():
    return {"model": _mlp}


def quality_unknown_metric():
    return {**quality_good(), "metrics": ["acuracy"]}


def quality_unknown_column():
    return {**quality_good(), "slices": {"night": {"column": "time", "equals": "night"}}}


def quality_regression_model():
    return {**quality_good(), "model": lambda: nn.Linear(4, 1)}


def quality_model_raises():
    def model():
        raise RuntimeError("weights not found")

    return {**quality_good(), "model": model}


def quality_inv_without_perturb():
    return {**quality_good(), "behaviour": [{"name": "inv", "type": "INV"}]}
"""

RESULTS = "results.json"


@pytest.fixture
def project(write_spec: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the spec module, an empty pyproject.toml, a valid results file and golden inputs; the cwd."""
    import torch

    monkeypatch.chdir(tmp_path)
    for key in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    write_spec(SPECS)
    torch.save(torch.randn(4, 4), tmp_path / "inputs.pt")
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)))
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("")
    argv = ["train-check", "--spec", "ci_spec.py:good", "--checks", "loss-at-init", "--quiet", "--format", "json"]
    assert main([*argv, "--output", str(tmp_path / RESULTS)]) == 0
    return tmp_path


GOOD = ["--spec", "ci_spec.py:good"]
ONE_CHECK = [*GOOD, "--checks", "loss-at-init", "--quiet"]

CASES = [
    # train-check: the spec
    pytest.param(["train-check", "--spec", "ci_spec.py:meta_batch"], "holds meta tensors", id="meta-batch"),
    pytest.param(
        ["train-check", "--spec", "ci_spec.py:batch_dim_past_the_inputs"],
        "batch_dim=5, but no input tensor",
        id="batch-dim-past-the-inputs",
    ),
    pytest.param(["train-check", "--spec", "ci_spec.py:huge_seed"], "seed 1180591620717411303424", id="spec-seed"),
    # train-check: options
    pytest.param(["train-check", *GOOD, "--seed", str(2**70)], "--seed must be an integer from 0", id="seed-2**70"),
    pytest.param(["train-check", *GOOD, "--seed", "-1"], "--seed must be an integer from 0", id="seed-negative"),
    pytest.param(["train-check", *GOOD, "--threads", "100000"], "--threads must be between 1", id="threads-huge"),
    pytest.param(["train-check", *GOOD, "--threads", "0"], "--threads must be between 1", id="threads-0"),
    pytest.param(["train-check", *GOOD, "--step-timeout", "0"], "--step-timeout must be a positive", id="step-0"),
    pytest.param(["train-check", *GOOD, "--step-timeout", "nan"], "--step-timeout must be a positive", id="step-nan"),
    pytest.param(["train-check", *GOOD, "--step-timeout", "-5"], "--step-timeout must be a positive", id="step-neg"),
    pytest.param(["train-check", *GOOD, "--set", "checkpoint.rtol=nan"], "'checkpoint.rtol'", id="set-rtol-nan"),
    pytest.param(
        ["train-check", *GOOD, "--checks", "loss-at-init", "--skip", "loss-at-init"],
        "no checks left to run",
        id="every-check-skipped",
    ),
    pytest.param(["train-check", *GOOD, "--device", "meta"], "cannot run training", id="device-meta"),
    pytest.param(
        ["train-check", *ONE_CHECK, "--output", "a-folder"], "a-folder: cannot write results", id="output-dir"
    ),
    pytest.param(
        ["train-check", *ONE_CHECK, "--output", "missing/r.json"], "cannot write results", id="output-missing-dir"
    ),
    # --config, for every command that reads it
    pytest.param(["train-check", *GOOD, "--config", "a-folder"], "is a folder, not a config file", id="config-dir"),
    pytest.param(["train-check", *GOOD, "--config", "binary.toml"], "not a text file", id="config-binary"),
    pytest.param(["golden", *GOOD, "--config", "a-folder"], "is a folder, not a config file", id="golden-config-dir"),
    pytest.param(["rerun", "--config", "binary.toml"], "not a text file", id="rerun-config-binary"),
    pytest.param(["compare", "--config", "a-folder"], "is a folder, not a config file", id="compare-config-dir"),
    # golden
    pytest.param(["golden", *GOOD, "--suite", "night/time=inputs.pt"], "cannot be a file name", id="suite-slash"),
    pytest.param(["golden", *GOOD, "--suite", "..=inputs.pt"], "cannot be a file name", id="suite-dotdot"),
    pytest.param(["golden", *GOOD, "--suite", "s=inputs.pt", "--atol", "nan"], "--atol must be", id="golden-nan"),
    pytest.param(["golden", *GOOD, "--suite", "s=a-folder"], "is a folder", id="golden-inputs-dir"),
    pytest.param(
        ["golden", *GOOD, "--suite", "s=inputs.pt", "--update", "--dir", "a-file"], "is a file", id="golden-dir-file"
    ),
    # export-parity
    pytest.param(["export-parity", *GOOD, "--atol", "nan"], "--atol must be a finite number", id="export-atol-nan"),
    pytest.param(["export-parity", *GOOD, "--rtol", "-1"], "--rtol must be a finite number", id="export-rtol-neg"),
    pytest.param(["export-parity", *GOOD, "--opset", "0"], "--opset must be", id="export-opset-0"),
    pytest.param(["export-parity", *GOOD, "--keep", "a-folder"], "is a folder", id="export-keep-dir"),
    # rerun (checked before the repository is looked at)
    pytest.param(["rerun", "--ref", "v1", "--timeout-minutes", "0"], "--timeout-minutes must be", id="rerun-timeout-0"),
    pytest.param(
        ["rerun", "--ref", "v1", "--timeout-minutes", "nan"], "--timeout-minutes must", id="rerun-timeout-nan"
    ),
    pytest.param(["rerun", "--ref", "v1", "--timeout-minutes", "-3"], "--timeout-minutes must", id="rerun-timeout-neg"),
    pytest.param(["rerun", "--ref", "v1"], "not in a git repository", id="rerun-outside-git"),
    # report
    pytest.param(
        ["report", RESULTS, "--max-chars", "0"],
        "--max-chars",
        id="report-max-chars-0",
    ),
    pytest.param(
        ["report", RESULTS, "--plots-dir", "a-file/plots"],
        "plots",
        id="report-plots-dir",
    ),
    # quality
    pytest.param(["quality", "--spec", "ci_spec.py:quality_no_dataset"], "has no 'dataset'", id="quality-no-dataset"),
    pytest.param(["quality", "--spec", "ci_spec.py:quality_unknown_metric"], "did you mean 'accuracy'", id="q-metric"),
    pytest.param(["quality", "--spec", "ci_spec.py:quality_unknown_column"], "column 'time'", id="quality-column"),
    pytest.param(
        ["quality", "--quiet", "--spec", "ci_spec.py:quality_regression_model"], "class logits", id="quality-logits"
    ),
    pytest.param(
        ["quality", "--quiet", "--spec", "ci_spec.py:quality_model_raises"], "weights not found", id="quality-raises"
    ),
    pytest.param(["quality", "--spec", "ci_spec.py:quality_inv_without_perturb"], "needs 'perturb'", id="quality-inv"),
    pytest.param(["quality", "--spec", "no_such.py:q"], "spec file not found", id="quality-no-spec-file"),
    pytest.param(["quality"], "no quality spec", id="quality-no-spec"),
    pytest.param(["quality", "--config", "a-folder"], "is a folder, not a config file", id="quality-config-dir"),
    pytest.param(["quality", "--threads", "0"], "--threads must be between 1", id="quality-threads-0"),
    pytest.param(
        ["quality", "--spec", "ci_spec.py:quality_good", "--mine", "0"], "--mine must be", id="quality-mine-0"
    ),
    pytest.param(
        ["quality", "--spec", "ci_spec.py:quality_good", "--mine", "2", "--suite-name", "../x"],
        "cannot be a file name",
        id="quality-mine-name",
    ),
    pytest.param(
        ["quality", "--spec", "ci_spec.py:quality_good", "--mine", "2", "--suites-dir", "a-file"],
        "is a file, not the suites folder",
        id="quality-mine-dir",
    ),
    pytest.param(
        ["quality", "--spec", "ci_spec.py:quality_good", "--base", "HEAD"], "not in a git repository", id="quality-base"
    ),
    # data-check, data-stats (the dataset-level cases are in tests/data/test_data_check.py)
    pytest.param(["data-check"], "no datasets under [tool.ci-checks.data.datasets]", id="data-no-datasets"),
    pytest.param(["data-check", "--max-rows", "-1"], "--max-rows must be 0", id="data-max-rows"),
    pytest.param(["data-check", "--config", "a-folder"], "is a folder, not a config file", id="data-config-dir"),
    pytest.param(["data-stats", "--config", "binary.toml"], "not a text file", id="data-stats-config-binary"),
    pytest.param(["data-stats", "--record"], "--record needs --history", id="data-stats-record"),
    pytest.param(["data-stats", "--base", "HEAD", "--base-stats", RESULTS], "not both", id="data-stats-two-bases"),
    # rollback, score
    pytest.param(["rollback", *GOOD, "--artifact", "m.pt"], "run it inside the repository", id="rollback-outside-git"),
    pytest.param(["rollback", *GOOD, "--config", "binary.toml"], "binary.toml", id="rollback-bad-config"),
    pytest.param(["score", "--min-score", "-1"], "--min-score must be between 0 and 7", id="score-min-score"),
    pytest.param(["score", "--root", "a-file"], "not a folder", id="score-root-not-a-folder"),
]

MALFORMED = [
    pytest.param({"checks": "x"}, id="checks-not-a-list"),
    pytest.param({"subject": []}, id="subject-not-an-object"),
    pytest.param({"schema_version": "x"}, id="schema-version-not-a-number"),
    pytest.param({"checks": [{"status": "pass"}]}, id="check-without-name"),
    pytest.param({"checks": [{"check": "c", "status": "pass", "findings": 5}]}, id="findings-not-a-list"),
    pytest.param(
        {
            "checks": [
                {"check": "c", "status": "fail", "findings": [{"severity": "error", "message": "m", "location": "a"}]}
            ]
        },
        id="location-not-an-object",
    ),
    pytest.param(
        {"checks": [{"check": "c", "status": "pass", "duration_s": "fast"}]},
        id="duration-not-a-number",
    ),
    pytest.param(
        {"checks": [{"check": "c", "status": "bogus"}]},
        id="unknown-status",
    ),
]


def assert_one_line(capsys: pytest.CaptureFixture[str], code: int, message: str) -> None:
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}: {err}"
    assert err.startswith("ci-checks: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(("argv", "message"), CASES)
def test_bad_input_exits_2_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    capsys.readouterr()
    assert_one_line(capsys, main(argv), message)


@pytest.mark.parametrize("fields", MALFORMED)
def test_a_malformed_results_document_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, Any]
) -> None:
    doc = {"schema": "ci-checks/results", "schema_version": 1, "command": "train-check", "status": "pass"}
    doc["checks"] = []
    doc.update(fields)
    (project / "bad.json").write_text(json.dumps(doc))
    capsys.readouterr()
    code = main(["report", "bad.json"])
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}: {err}"
    assert err.startswith("ci-checks: error: bad.json") and err.count("\n") == 1 and "Traceback" not in err


def test_metrics_nested_too_deep_exit_2(
    compare_project: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dvc_yaml = "stages:\n  t:\n    cmd: x\n    metrics:\n    - m.json:\n        cache: false\n"
    p = compare_project({"dvc.yaml": dvc_yaml, "m.json": {"a": 1}}, {"m.json": "[" * 100_000 + "]" * 100_000})
    capsys.readouterr()
    assert_one_line(capsys, main(["compare", "--head-dir", str(p.root), "--base", "main"]), "m.json")


def test_report_with_an_unwritable_step_summary_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project / "missing" / "summary.md"))
    capsys.readouterr()
    assert_one_line(capsys, main(["report", RESULTS]), "GITHUB_STEP_SUMMARY")


def test_an_unwritable_step_summary_exits_2_after_writing_the_results(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passing run whose GITHUB_STEP_SUMMARY cannot be written: exit 2 naming the variable; results still written."""
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project / "missing" / "summary.md"))
    capsys.readouterr()
    code = main(["train-check", *ONE_CHECK, "--format", "github", "--output", "r.json"])
    _, err = capsys.readouterr()
    assert code == 2 and "GITHUB_STEP_SUMMARY" in err and err.count("\n") == 1, err
    assert json.loads((project / "r.json").read_text())["status"] == "pass"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["train-check", "--spec", "ci_spec.py:batch_dim_past_the_inputs"], id="train-check-exit-2"),
        pytest.param(["train-check", "--spec", "missing.py:good"], id="train-check-spec-missing"),
        pytest.param(["golden", *GOOD, "--suite", "a/b=inputs.pt"], id="golden-exit-2"),
        pytest.param(["rerun", "--ref", "v1"], id="rerun-exit-2"),
        pytest.param(["compare", "--config", "a-folder"], id="compare-exit-2"),
        pytest.param(["quality", "--spec", "no_such.py:q"], id="quality-exit-2"),
        pytest.param(["rollback", *GOOD, "--artifact", "m.pt"], id="rollback-exit-2"),
        pytest.param(["score", "--root", "a-file"], id="score-exit-2"),
    ],
)
def test_a_failed_run_leaves_no_stale_results_file(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """--output of an earlier run is removed before the command runs, so exit 2 cannot leave it to be read as new."""
    stale = project / "stale.json"
    stale.write_text('{"status": "pass"}')
    assert main([*argv, "--output", str(stale)]) == 2
    assert not stale.exists()


def test_report_reads_an_input_named_as_its_output_before_writing_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stale-output rule never removes a file the command is about to read."""
    assert main(["report", RESULTS, "--output", RESULTS]) == 0
    assert "loss-at-init" in (project / RESULTS).read_text()
