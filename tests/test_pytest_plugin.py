"""The pytest plugin, run with pytester as users run it: a fixture, a marker, assert helpers."""

from __future__ import annotations

import textwrap
from pathlib import Path

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
