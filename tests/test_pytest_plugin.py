"""The pytest plugin, run with pytester as users run it: a fixture, a marker, assert helpers."""

from __future__ import annotations

import textwrap

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
    result.stdout.fnmatch_lines(["*TrainingCheckFailed*", "*missing optimizer.zero_grad()*"])


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
