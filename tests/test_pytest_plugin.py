"""The pytest plugin, run with pytester as users run it: a fixture, a marker, assert helpers."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

SPEC = """
import torch

def step(model, batch, loss_fn, optimizer):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss

def forgets_zero_grad(model, batch, loss_fn, optimizer):
    x, y = batch
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss

def _spec(train_step):
    g = torch.Generator().manual_seed(0)
    return {
        "model_factory": lambda: torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)),
        "optimizer_factory": lambda p: torch.optim.Adam(p, lr=0.02),
        "loss_fn": torch.nn.functional.cross_entropy,
        "batch": (torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)),
        "train_step": train_step,
    }

def good():
    return _spec(step)

def bad():
    return _spec(forgets_zero_grad)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(user_spec=SPEC)
    return pytester


def test_fixture_passes_a_correct_spec_and_fails_a_buggy_one(project: pytest.Pytester) -> None:
    project.makepyfile(test_training=textwrap.dedent("""
            def test_good(train_check):
                report = train_check.assert_trains("user_spec.py:good")
                assert report.status == "pass"

            def test_bad(train_check):
                train_check.assert_trains("user_spec.py:bad")
            """))
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*TrainingCheckFailed*", "*missing zero_grad()*"])


def test_marker_selects_the_fast_tier(project: pytest.Pytester) -> None:
    project.makepyfile(test_tiers=textwrap.dedent("""
            import pytest

            @pytest.mark.train_check
            def test_marked():
                pass

            def test_uses_fixture(train_check):
                assert train_check.run("user_spec.py:good", ["loss-at-init"]).status == "pass"

            def test_other():
                pass
            """))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-m", "train_check", "--strict-markers")
    result.assert_outcomes(passed=2, deselected=1)


def test_default_spec_from_option_and_from_pyproject(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_default="def test_it(train_check):\n    train_check.assert_trains(checks=['loss-at-init'])\n"
    )
    project.runpytest_subprocess("-p", "no:cacheprovider", "--ci-checks-spec", "user_spec.py:good").assert_outcomes(
        passed=1
    )
    project.makefile(".toml", pyproject='[tool.ci-checks]\nspec = "user_spec.py:bad"\n')
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)  # loss-at-init passes on the zero_grad bug: the spec came from pyproject


def test_no_spec_anywhere_fails_with_one_line(project: pytest.Pytester) -> None:
    project.makepyfile(test_none="def test_it(train_check):\n    train_check.assert_trains()\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*train_check: no spec given*"])


# A project as users lay it out: pyproject.toml naming the spec, the spec next to the model, tests in tests/.
MODEL = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)
"""

CI_SPEC = """
import torch
from model import Net


def training_spec():
    return {
        "model_factory": Net,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=0.02),
        "loss_fn": torch.nn.functional.cross_entropy,
        "batch": (torch.randn(8, 6), torch.randint(0, 3, (8,))),
    }
"""

TEST_TRAINING = """
def test_configured_spec(train_check):
    train_check.assert_trains(checks=["loss-at-init"])


def test_spec_named_in_the_test(train_check):
    assert train_check.run("ci_spec.py:training_spec", ["loss-at-init"]).status == "pass"
"""


def _project(pytester: pytest.Pytester, pyproject: str) -> Path:
    root = pytester.path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    (root / "model.py").write_text(MODEL)
    (root / "ci_spec.py").write_text(CI_SPEC)
    (root / "tests" / "test_training.py").write_text(TEST_TRAINING)
    return root


@pytest.mark.parametrize(
    ("where", "args"),
    [
        pytest.param(".", ["proj/tests"], id="from-the-parent-folder"),
        pytest.param("proj/tests", [], id="from-the-tests-folder"),
    ],
)
def test_specs_are_found_from_any_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str, args: list[str]
) -> None:
    _project(pytester, '[project]\nname = "proj"\n\n[tool.ci-checks]\nspec = "ci_spec.py:training_spec"\n')
    monkeypatch.chdir(pytester.path / where)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=2)


def test_the_spec_option_is_relative_to_the_invocation_directory(pytester: pytest.Pytester) -> None:
    root = _project(pytester, '[project]\nname = "proj"\n')
    (root / "tests" / "test_training.py").write_text(TEST_TRAINING.split("\n\n\n")[0] + "\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "proj/tests", "--ci-checks-spec", "proj/ci_spec.py:training_spec"
    )
    result.assert_outcomes(passed=1)


# ---------------------------------------------------------------- several specs in one process, in any order
#
# A project with three specs: one at the top next to its model.py and helpers.py, two in folders a/ and b/ with a
# model.py each (6 and 5 input features). Each spec imports `model` by its bare name; the tests also import the
# project's own `model` and `helpers` and check the random state. Loading one spec must not unload, shadow or take
# off sys.path what the others or the tests use.

MULTI_MODEL = """
from torch import nn

FEATURES = {features}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)
"""

MULTI_SPEC = """
import torch
from model import FEATURES, Net


def training_spec():
    g = torch.Generator().manual_seed(0)
    return {
        "model_factory": Net,
        "optimizer_factory": lambda p: torch.optim.Adam(p, lr=0.02),
        "loss_fn": torch.nn.functional.cross_entropy,
        "batch": (torch.randn(8, FEATURES, generator=g), torch.randint(0, 3, (8,), generator=g)),
    }
"""

TOP_SPEC = """
import torch
from helpers import batch


def training_spec():
    from model import Net  # imported when the spec function runs

    return {
        "model_factory": Net,
        "optimizer_factory": lambda p: torch.optim.Adam(p, lr=0.02),
        "loss_fn": torch.nn.functional.cross_entropy,
        "batch": batch(),
    }
"""

MULTI_TESTS = """
import random

import numpy
import pytest
import torch


@pytest.mark.parametrize("i", range(3))
@pytest.mark.parametrize("spec", ["ci_spec.py", "a/ci_spec.py", "b/ci_spec.py"])
def test_spec_trains(train_check, spec, i):
    assert train_check.run(f"{spec}:training_spec", ["loss-at-init"]).status == "pass"


@pytest.mark.parametrize("i", range(3))
def test_the_projects_own_imports_still_work(i):
    import helpers
    import model

    assert helpers.FEATURES == 4 and model.Net().layers[0].in_features == 4


@pytest.mark.parametrize("spec", ["a/ci_spec.py", "ci_spec.py"])
def test_the_random_state_is_given_back(train_check, spec):
    random.seed(1), torch.manual_seed(1), numpy.random.seed(1)
    train_check.run(f"{spec}:training_spec", ["loss-at-init", "reproducibility"])
    after = (random.random(), torch.rand(1).item(), numpy.random.rand())
    random.seed(1), torch.manual_seed(1), numpy.random.seed(1)
    assert after == (random.random(), torch.rand(1).item(), numpy.random.rand())
"""

# pytest-randomly's core, so the test needs no plugin: the collected tests in an order given by a seed.
SHUFFLE = """
import os
import random


def pytest_collection_modifyitems(items):
    seed = os.environ.get("SHUFFLE_SEED")
    if seed:
        random.Random(int(seed)).shuffle(items)
"""


@pytest.fixture
def several_specs(pytester: pytest.Pytester) -> pytest.Pytester:
    root = pytester.path
    (root / "pyproject.toml").write_text('[project]\nname = "proj"\n')
    (root / "conftest.py").write_text("")  # pytest puts the project folder on sys.path (rootdir conftest)
    (root / "helpers.py").write_text(
        "import torch\n\nFEATURES = 4\n\n\ndef batch():\n"
        "    g = torch.Generator().manual_seed(4)\n"
        "    return torch.randn(8, FEATURES, generator=g), torch.randint(0, 3, (8,), generator=g)\n"
    )
    (root / "model.py").write_text(MULTI_MODEL.format(features=4))
    (root / "ci_spec.py").write_text(TOP_SPEC)
    for folder, features in (("a", 6), ("b", 5)):
        (root / folder).mkdir()
        (root / folder / "model.py").write_text(MULTI_MODEL.format(features=features))
        (root / folder / "ci_spec.py").write_text(MULTI_SPEC)
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(SHUFFLE)
    (root / "tests" / "test_specs.py").write_text(MULTI_TESTS)
    return pytester


@pytest.mark.parametrize("seed", [pytest.param("", id="plain-order"), pytest.param("1", id="shuffled")])
def test_several_specs_in_any_order(several_specs: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, seed: str) -> None:
    monkeypatch.setenv("SHUFFLE_SEED", seed)
    result = several_specs.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=14)


def test_several_specs_split_across_two_processes(several_specs: pytest.Pytester) -> None:
    """pytest -n 2 with pytest-xdist when it is installed; else what it amounts to: two processes at once, each
    running half of the tests in its own order."""
    try:
        import xdist  # noqa: F401
    except ImportError:
        pass
    else:
        result = several_specs.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
        result.assert_outcomes(passed=14)
        return
    import subprocess
    import sys

    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=several_specs.path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ids = [line for line in collected if "::" in line]
    assert len(ids) == 14
    halves = [ids[1::2], ids[0::2]]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *half],
            cwd=several_specs.path,
            env={**os.environ, "SHUFFLE_SEED": str(seed)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed, half in enumerate(halves, 3)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output
        assert f"{7} passed" in output, output


def test_the_python_api_gives_back_the_random_state(make_spec: Any) -> None:
    import random

    import numpy
    import torch

    from ci_checks.testing import run_training_checks

    random.seed(1), torch.manual_seed(1), numpy.random.seed(1)
    run_training_checks(make_spec(), ["loss-at-init", "reproducibility", "checkpoint"])
    after = (random.random(), torch.rand(1).item(), numpy.random.rand())
    random.seed(1), torch.manual_seed(1), numpy.random.seed(1)
    assert after == (random.random(), torch.rand(1).item(), numpy.random.rand())


EXITING_STEP = """
import os, sys
import torch
from ci_checks.testing import run_training_checks


def train_step(model, batch, loss_fn, optimizer):
    os._exit(0)


spec = {
    "model_factory": lambda: torch.nn.Linear(4, 3),
    "optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.1),
    "loss_fn": torch.nn.functional.cross_entropy,
    "batch": (torch.randn(8, 4), torch.randint(0, 3, (8,))),
    "train_step": train_step,
}
report = run_training_checks(spec, ["parameter-updates"])
print("still here:", report.checks[0].findings[0].message)
sys.exit(7)
"""


def test_the_python_api_keeps_the_users_process_alive_when_the_step_exits() -> None:
    """In a child process: were the guard missing, os._exit(0) would end it (and a pytest run) with 0, silently."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", EXITING_STEP], capture_output=True, text=True)
    assert proc.returncode == 7, proc.stderr
    assert "still here: parameter-updates: the training step raised HardExit at step 1" in proc.stdout
