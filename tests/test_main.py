"""The CLI: exit codes, the text output, bad input as one line on stderr, and --help without torch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_checks.checks import CHECKS
from ci_checks.main import main

REPO = Path(__file__).resolve().parents[1]

SPECS = """
def lr_zero():
    spec = good()
    spec["optimizer_factory"] = lambda params: torch.optim.SGD(params, lr=0.0)
    return spec


def wrong_type():
    return [good()]


def missing_loss():
    spec = good()
    del spec["loss_fn"]
    return spec


def bad_shape():
    spec = good()
    spec["batch"] = synthetic_batch((5,), batch_size=8, num_classes=3)
    return spec


def non_scalar_loss():
    spec = good()
    spec["loss_fn"] = nn.CrossEntropyLoss(reduction="none")
    return spec


def not_a_module():
    spec = good()
    spec["model_factory"] = lambda: "model"
    return spec


def not_an_optimizer():
    spec = good()
    spec["optimizer_factory"] = lambda params: list(params)
    return spec


def raises():
    raise ValueError("no data in CI")


def batch_not_a_pair():
    spec = good()
    spec["batch"] = spec["batch"][0]
    return spec


def step_returns_vector():
    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return nn.functional.cross_entropy(model(x), y, reduction="none")
    return {**good(), "train_step": train_step}


def bad_seed():
    return {**good(), "seed": "a"}


def bad_frozen():
    return {**good(), "frozen": [1, 2]}


def bad_settings():
    return {**good(), "memorization": 5}


def no_cuda():
    return {**good(), "device": "cuda"}


def empty_batch():
    x, y = good()["batch"]
    return {**good(), "batch": (x[:0], y[:0])}


def scalar_output():
    class Mean(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(4, 1)

        def forward(self, x):
            return self.l(x).mean()

    return {**good(), "model_factory": Mean, "loss_fn": lambda out, y: out**2}


def count_regression():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 100, (16,), generator=g)
    return {**good(), "model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)),
            "loss_fn": lambda out, t: nn.functional.mse_loss(out.squeeze(-1), t.float()) / 1000, "batch": (x, y)}


NOT_A_FUNCTION = 3
"""


@pytest.fixture
def spec(write_spec, tmp_path, monkeypatch):
    """The path of a spec module with good() and one function per kind of bad input; cwd is its folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")  # keep the repository's own [tool.ci-checks] out of these tests
    return write_spec(SPECS)


def line_of(path: str, func: str) -> int:
    return next(i for i, line in enumerate(Path(path).read_text().splitlines(), 1) if line.startswith(f"def {func}("))


def test_clean_spec_exits_0(spec, capsys):
    assert main(["train-check", "--spec", f"{spec}:good", "--quiet"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [
        ["PASS", name]
        for name in (
            "parameter-updates",
            "loss-at-init",
            "finite-values",
            "loss-decreases",
            "memorization",
            "batch-independence",
            "reproducibility",
            "checkpoint",
            "train-mode",
        )
    ]
    assert lines[-1].startswith("train-check: PASS - 9 passed, 0 warned, 0 failed, 0 skipped in ")
    assert err == ""


def test_failing_spec_exits_1_with_path_line_findings(spec, capsys):
    assert main(["train-check", "--spec", f"{spec}:lr_zero", "--quiet"]) == 1
    out, _ = capsys.readouterr()
    assert "FAIL  parameter-updates" in out
    assert (
        f"ci_spec.py:{line_of(spec, 'lr_zero')}: error: parameter-updates: did not change after one step: 0.weight"
        in out
    )
    assert "the learning rate is 0" in out
    assert out.splitlines()[-1].startswith("train-check: FAIL - ")


def test_check_subcommand_runs_one_check(spec, capsys):
    assert main(["memorization", "--spec", f"{spec}:good", "--quiet"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0].startswith("PASS  memorization")
    assert "1 passed" in out.splitlines()[-1]


def test_check_module_main_is_the_subcommand(spec, capsys):
    from ci_checks.checks import parameter_updates

    assert parameter_updates.main(["--spec", f"{spec}:lr_zero", "--quiet"]) == 1
    assert capsys.readouterr().out.startswith("FAIL  parameter-updates")


def test_checks_and_skip_select(spec, capsys):
    argv = [
        "train-check",
        "--spec",
        f"{spec}:good",
        "--checks",
        "memorization, loss-at-init,loss-decreases",
        "--skip",
        "loss-decreases",
        "--quiet",
    ]
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert [line.split()[1] for line in out.splitlines()[:-1]] == ["loss-at-init", "memorization"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param("--checks", "memorisation", id="checks"),
        pytest.param("--skip", "memorisation", id="skip"),
    ],
)
def test_unknown_check_name_exits_2_with_closest(spec, capsys, option, value):
    assert main(["train-check", "--spec", f"{spec}:good", option, value]) == 2
    _, err = capsys.readouterr()
    assert err == "ci-checks: error: unknown check 'memorisation'; did you mean 'memorization'?\n"


def test_set_overrides_a_setting(spec, capsys):
    argv = [
        "train-check",
        "--spec",
        f"{spec}:good",
        "--checks",
        "memorization",
        "--format",
        "json",
        "--set",
        "memorization.max-steps=12",
        "--set",
        "memorization.target-loss=-1",
    ]
    assert main(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["subject"]["settings"]["memorization"]["max-steps"] == 12
    assert doc["subject"]["settings"]["memorization"]["target-loss"] == -1
    assert doc["checks"][0]["figures"]["steps_run"] == 12


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param("memorization.max-steps", "expected CHECK.KEY=VALUE", id="no-equals"),
        pytest.param("max-steps=5", "expected CHECK.KEY=VALUE", id="no-check"),
        pytest.param(
            "memorisation.max-steps=5", "unknown check 'memorisation'; did you mean 'memorization'?", id="unknown-check"
        ),
        pytest.param(
            "memorization.max-step=5",
            "unknown setting 'memorization.max-step'; did you mean 'max-steps'?",
            id="unknown-setting",
        ),
        pytest.param(
            "memorization.max-steps=lots", "'memorization.max-steps' must be an integer, got 'lots'", id="wrong-type"
        ),
        pytest.param("finite-values.x=1", "'finite-values' takes no settings", id="check-without-settings"),
        pytest.param("reproducibility.steps=0", "'reproducibility.steps' must be at least 1", id="zero-steps"),
        pytest.param("checkpoint.rtol=-1", "'checkpoint.rtol' must be at least 0", id="negative-tolerance"),
    ],
)
def test_bad_set_exits_2(spec, capsys, item, message):
    assert main(["train-check", "--spec", f"{spec}:good", "--set", item]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("ci-checks: error: ") and message in err
    assert err.count("\n") == 1


BAD_INPUT = [
    pytest.param("missing.py:good", "missing.py: spec file not found", id="spec-file-missing"),
    pytest.param("{spec}", "names no function", id="no-colon"),
    pytest.param("{spec}:nope", "has no function 'nope'; functions there: bad_frozen, bad_seed", id="no-function"),
    pytest.param("{spec}:NOT_A_FUNCTION", "'NOT_A_FUNCTION' is a int, not a function", id="not-a-function"),
    pytest.param(
        "{spec}:wrong_type", "must return a ci_checks.TrainingSpec or a dict, got list", id="wrong-return-type"
    ),
    pytest.param("{spec}:missing_loss", "the spec has no 'loss_fn'; add a callable", id="missing-required-key"),
    pytest.param(
        "{spec}:batch_not_a_pair", "'batch' must be a pair (inputs, targets), got Tensor", id="batch-not-pair"
    ),
    pytest.param("{spec}:raises", "the spec function raised ValueError: no data in CI", id="spec-function-raises"),
    pytest.param(
        "{spec}:non_scalar_loss", "loss_fn returned a tensor of shape [8], not a scalar", id="non-scalar-loss"
    ),
    pytest.param("{spec}:not_a_module", "model_factory() must return a torch.nn.Module, got str", id="not-a-module"),
    pytest.param(
        "{spec}:not_an_optimizer", "the optimizer must be a torch.optim.Optimizer, got list", id="not-an-optimizer"
    ),
    pytest.param("{spec}:step_returns_vector", "train_step returned a tensor of shape [8]", id="step-returns-vector"),
    pytest.param("no_such_package.specs:good", "no_such_package.specs: module not found", id="module-missing"),
    pytest.param("{spec}:bad_seed", "'seed' must be an integer, got 'a'", id="seed-not-int"),
    pytest.param("{spec}:bad_frozen", "'frozen' must be a list of parameter names", id="frozen-not-names"),
    pytest.param("{spec}:bad_settings", "'memorization' must be a dict of that check's settings", id="settings"),
    pytest.param("{spec}:no_cuda", "torch sees no CUDA GPU here", id="cuda-missing"),
    pytest.param("{spec}:empty_batch", "the spec's batch is empty", id="empty-batch"),
]


def test_a_model_that_raises_on_the_batch_is_a_finding_not_a_crash(spec, capsys):
    """The user's model raising is a finding about their code (exit 1) naming the exception and its likely cause."""
    assert main(["train-check", "--spec", f"{spec}:bad_shape", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and err == ""
    assert (
        "error: parameter-updates: the model's forward on the spec's batch raised RuntimeError: mat1 and mat2 shapes "
        "cannot be multiplied (8x5 and 4x16) - a shape mismatch" in out
    )
    assert out.count("SKIP ") == 8


@pytest.mark.parametrize(("ref", "message"), BAD_INPUT)
def test_bad_input_exits_2_with_one_line(spec, capsys, ref, message):
    assert main(["train-check", "--spec", ref.format(spec=spec), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("ci-checks: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err


MISSING_BEFORE_TORCH = """
import sys
from ci_checks.main import main

code = main(["train-check", "--spec", sys.argv[1]])
print("exit", code, "torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        pytest.param("ci_spce.py:training_spec", "ci_spce.py: spec file not found", id="file"),
        pytest.param("specs/ci_spec.py:training_spec", "specs/ci_spec.py: spec file not found", id="file-in-folder"),
        pytest.param("myproject.ci_spec:training_spec", "myproject.ci_spec: module not found", id="package"),
        pytest.param("userpkg.ci_spce:training_spec", "userpkg.ci_spce: module not found", id="submodule"),
        pytest.param("userpkg.model.ci_spec:spec", "userpkg.model.ci_spec: module not found", id="module-of-module"),
    ],
)
def test_a_missing_spec_fails_before_torch_is_imported(tmp_path, ref, message):
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("import torch\n")  # finding userpkg.x must not run this
    (package / "model.py").write_text("import torch\n")
    (tmp_path / "pyproject.toml").write_text("")
    proc = subprocess.run(
        [sys.executable, "-c", MISSING_BEFORE_TORCH, ref], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert proc.stdout.splitlines()[-1] == "exit 2 torch imported: False"
    assert proc.stderr.startswith(f"ci-checks: error: {message}; pass --spec ") and proc.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("configured", "layout"),
    [
        pytest.param("ci_spec.py:good", {"ci_spec.py": "SPEC"}, id="file"),
        pytest.param("specs/ci_spec.py:good", {"specs/ci_spec.py": "SPEC"}, id="file-in-folder"),
        pytest.param("specs.ci_spec:good", {"specs/__init__.py": "", "specs/ci_spec.py": "SPEC"}, id="package-module"),
    ],
)
def test_the_configured_spec_is_relative_to_its_pyproject(
    tmp_path, monkeypatch, capsys, write_spec, configured, layout
):
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if text == "SPEC":
            write_spec(name=name)
        else:
            (tmp_path / name).write_text(text)
    (tmp_path / "pyproject.toml").write_text(f'[tool.ci-checks]\nspec = "{configured}"\n')
    (tmp_path / "src" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "src" / "model")  # e.g. a terminal left in the package folder
    assert main(["train-check", "--checks", "loss-at-init", "--format", "json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "pass"


def test_the_command_line_spec_is_relative_to_the_working_directory(tmp_path, monkeypatch, capsys, write_spec):
    write_spec()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    assert main(["train-check", "--spec", "ci_spec.py:good", "--checks", "loss-at-init"]) == 2
    assert "ci_spec.py: spec file not found" in capsys.readouterr().err
    assert main(["train-check", "--spec", "../ci_spec.py:good", "--checks", "loss-at-init", "--quiet"]) == 0


def test_threads_default_to_one(spec, capsys):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["train-check", "--spec", f"{spec}:good", "--checks", "loss-at-init", "--quiet"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_no_spec_anywhere_exits_2(spec, capsys):
    assert main(["train-check"]) == 2
    assert "no training spec: pass --spec FILE.py:FUNCTION" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--debug", "train-check"], id="before-subcommand"),
        pytest.param(["train-check", "--debug"], id="after-subcommand"),
    ],
)
def test_debug_shows_the_traceback(spec, capsys, argv):
    assert main([*argv, "--spec", f"{spec}:raises"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: no data in CI" in err
    assert err.rstrip().splitlines()[-1].startswith("ci-checks: error: ")


def _raise(exc: BaseException):
    def boom(*args, **kwargs):
        raise exc

    return boom


def test_internal_error_exits_3(spec, capsys, monkeypatch):
    monkeypatch.setattr("ci_checks.render.render_text", _raise(ZeroDivisionError("float division by zero")))
    assert main(["train-check", "--spec", f"{spec}:good", "--checks", "loss-at-init"]) == 3
    err = capsys.readouterr().err
    assert err == (
        "ci-checks: internal error: ZeroDivisionError: float division by zero "
        "(rerun with --debug for the traceback, and please report it)\n"
    )


def test_internal_error_with_debug_shows_traceback(spec, capsys, monkeypatch):
    monkeypatch.setattr("ci_checks.render.render_text", _raise(ZeroDivisionError("float division by zero")))
    assert main(["train-check", "--debug", "--spec", f"{spec}:good", "--checks", "loss-at-init"]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_keyboard_interrupt_exits_130(spec, capsys, monkeypatch):
    monkeypatch.setattr("ci_checks.checks.run_checks", _raise(KeyboardInterrupt()))
    assert main(["train-check", "--spec", f"{spec}:good"]) == 130
    assert capsys.readouterr().err == "ci-checks: interrupted\n"


def test_no_command_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: ci-checks")


def test_version(capsys):
    from ci_checks import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"ci-checks {__version__}\n"


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-check", "--sepc", "x.py:f"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --sepc" in capsys.readouterr().err


def test_seed_device_and_threads_reach_the_run(spec, capsys):
    import torch

    threads = torch.get_num_threads()
    try:
        argv = [
            "train-check",
            "--spec",
            f"{spec}:good",
            "--checks",
            "loss-at-init",
            "--format",
            "json",
            "--seed",
            "7",
            "--device",
            "cpu",
            "--threads",
            "1",
        ]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    subject = json.loads(capsys.readouterr().out)["subject"]
    assert subject["seed"] == 7 and subject["device"] == "cpu"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="top"),
        pytest.param(["train-check", "--help"], id="train-check"),
        pytest.param(["memorization", "--help"], id="check-subcommand"),
        pytest.param(["--version"], id="version"),
    ],
)
def test_help_does_not_import_torch(argv):
    code = (
        "import sys\n"
        "from ci_checks.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "torch imported: False"


def test_help_documents_exit_codes_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train-check", "--help"])
    out = capsys.readouterr().out
    for option in ("--spec", "--checks", "--skip", "--format", "--output", "--set", "--config"):
        assert option in out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit codes: 0 clean, 1 a check failed, 2 usage error or bad input, 3 internal error, 130 interrupted" in out


def test_python_dash_m(spec):
    argv = ["train-check", "--spec", f"{spec}:good", "--checks", "nope"]
    proc = subprocess.run([sys.executable, "-m", "ci_checks", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == "ci-checks: error: unknown check 'nope'; valid checks: " + ", ".join(sorted(CHECKS)) + "\n"


def test_example_project_passes(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    try:
        assert main(["train-check", "--spec", "examples/ci_spec.py:training_spec", "--format", "text", "--quiet"]) == 0
    finally:
        for name in ("model", "prepare", "train"):  # the example's src/ modules, imported by bare name
            if os.fspath(REPO / "examples") in (getattr(sys.modules.get(name), "__file__", None) or ""):
                del sys.modules[name]
    assert "9 passed, 0 warned, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--device", "foo"], "device 'foo' is not a torch device", id="bad-device"),
        pytest.param(["--threads", "-1"], "--threads must be between 1 and 1024, got -1", id="bad-threads"),
    ],
)
def test_bad_options_exit_2(spec, capsys, argv, message):
    assert main(["train-check", "--spec", f"{spec}:good", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_model_with_a_scalar_output_is_judged_by_its_loss(spec, capsys):
    assert main(["train-check", "--spec", f"{spec}:scalar_output", "--checks", "loss-at-init,memorization"]) in (0, 1)
    assert "internal error" not in capsys.readouterr().err


def test_integer_count_targets_are_regression_not_binary(spec, capsys):
    code = main(["train-check", "--spec", f"{spec}:count_regression", "--checks", "loss-at-init", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["subject"]["task"] == "regression"


def test_a_single_check_subcommand_names_itself(spec, capsys):
    assert main(["memorization", "--spec", f"{spec}:good", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["command"] == "memorization"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            "import sys\n\ndef main():\n    return 0\n\nsys.exit(main())\n",
            "importing it called sys.exit(0) - a script's main() runs at import",
            id="script-exits-at-import",
        ),
        pytest.param(
            "import sys\n\ndef spec():\n    sys.exit()\n", "the spec function called sys.exit(None)", id="spec-exits"
        ),
    ],
)
def test_user_code_calling_sys_exit_never_turns_a_run_green(tmp_path, monkeypatch, capsys, source, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text(source)
    assert main(["train-check", "--spec", "train.py:spec", "--quiet", "--output", "r.json"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ---------------------------------------------------------------- never pass silently, never hang


def test_user_code_exiting_outside_its_hooks_exits_2_with_its_frame(spec, tmp_path, monkeypatch, capsys):
    """sys.exit(0) from the user's code where no hook catches it (a probe's forward) is never a green run."""
    (tmp_path / "usermodel.py").write_text("import sys\n\n\ndef forward():\n    sys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import usermodel

    monkeypatch.setattr("ci_checks.checks.run_checks", lambda *a, **k: usermodel.forward())
    (tmp_path / "r.json").write_text('{"status": "pass"}')
    assert main(["train-check", "--spec", f"{spec}:good", "--output", "r.json"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "ci-checks: error: the code under test called sys.exit(0) at usermodel.py:5, so ci-checks stopped without a "
        "verdict; remove that call from the code the spec runs (a script's main() or argparse run at import or "
        "inside the model)\n"
    )
    assert not (tmp_path / "r.json").exists()  # the earlier run's "pass" is not left to be read


HARD_EXITS = """

def exits_hard():
    import os

    def train_step(model, batch, loss_fn, optimizer):
        os._exit(0)
    return {**good(), "train_step": train_step}


def signals_itself():
    import os, signal

    def train_step(model, batch, loss_fn, optimizer):
        os.kill(os.getpid(), signal.SIGTERM)
    return {**good(), "train_step": train_step}
"""


@pytest.mark.parametrize(
    ("function", "call"),
    [
        pytest.param(
            "exits_hard", "HardExit at step 1: os._exit(0) - the code called os._exit(0), which ends", id="os._exit"
        ),
        pytest.param("signals_itself", "HardExit at step 1: os.kill(its own pid, SIGTERM)", id="kill-self"),
    ],
)
def test_a_step_that_ends_the_process_is_a_finding(tmp_path, write_spec, function, call):
    """In a child process: were the guard missing, os._exit(0) would end it with 0 and no output."""
    write_spec(SPECS + HARD_EXITS)
    (tmp_path / "pyproject.toml").write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "ci_checks", "train-check", "--spec", f"ci_spec.py:{function}", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"error: parameter-updates: the training step raised {call}" in proc.stdout


def test_ctrl_c_while_the_commands_load_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr("ci_checks.main.build_parser", _raise(KeyboardInterrupt()))
    assert main(["train-check"]) == 130
    assert capsys.readouterr().err == "ci-checks: interrupted\n"


def test_a_hung_step_is_stopped_at_the_step_timeout(tmp_path, write_spec, monkeypatch, capsys):
    write_spec("import os\n" + SPECS + HUNG)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    assert main(["train-check", "--spec", "ci_spec.py:hangs", "--step-timeout", "0.5", "--quiet"]) == 1
    out = capsys.readouterr().out
    line = next(i for i, text in enumerate(Path(tmp_path / "ci_spec.py").read_text().splitlines(), 1) if "HANG" in text)
    assert f"error: parameter-updates: step 4 ran longer than 0.5 s (stopped at ci_spec.py:{line})" in out


HUNG = """

def hangs():
    import threading

    calls = []

    def train_step(model, batch, loss_fn, optimizer):
        calls.append(1)
        x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if len(calls) == 4:
            marker = os.environ.get("CI_CHECKS_TEST_MARKER")
            if marker:
                open(marker, "w").close()
            threading.Event().wait(600)  # HANG
        return loss.detach()

    # The user's own checkpoint hooks write a file (the kit's own checkpoint of a small model stays in memory).
    def save_checkpoint(model, optimizer, path):
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)

    def load_checkpoint(model, optimizer, path):
        state = torch.load(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])

    return {**good(), "train_step": train_step, "save_checkpoint": save_checkpoint, "load_checkpoint": load_checkpoint}
"""


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")])
def test_an_interrupted_train_check_leaves_no_checkpoint_and_no_results(tmp_path, write_spec, sig):
    """Interrupted in step 4, after the checkpoint of step 3 was written: exit 130, one line, nothing left in the
    temp folder, and no results file from an earlier run."""
    write_spec("import os\n" + SPECS + HUNG)
    (tmp_path / "pyproject.toml").write_text("")
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "r.json").write_text('{"status": "pass"}')
    marker = tmp_path / "in-step-4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_checks", "train-check", "--spec", "ci_spec.py:hangs", "--output", "r.json"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temp), "CI_CHECKS_TEST_MARKER": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "train-check never reached step 4"
        time.sleep(0.01)
    assert [p.name for p in temp.iterdir() if p.name.startswith("ci-checks-ckpt-")]  # the checkpoint exists now
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("ci-checks: interrupted") and "Traceback" not in err
    assert list(temp.iterdir()) == []
    assert not (tmp_path / "r.json").exists()
