"""A new check is one module plus one registry line: it runs, with its own settings and its own run needs."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from ci_checks import checks
from ci_checks.main import main

THROWAWAY = """\
from typing import Any

from ci_checks.engine.session import RunNeeds
from ci_checks.results import CheckResult

NAME = "steps-seen"
HELP = "a throwaway check: how many steps of the shared run it saw"
SETTINGS: dict[str, Any] = {"steps": 10, "limit": 1000}


def needs(settings):
    return RunNeeds(min_steps=int(settings["steps"]), max_steps=int(settings["steps"]))


def check(session):
    result = CheckResult(NAME)
    run = session.main_run()
    result.figures["steps_seen"] = len(run.losses)
    result.summary = f"saw {len(run.losses)} steps"
    if len(run.losses) > session.opt(NAME, "limit"):
        result.add("error", f"{NAME}: more than {session.opt(NAME, 'limit')} steps")
    return result
"""


@pytest.fixture
def throwaway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a check module that lives outside the package: only REGISTRY is touched."""
    (tmp_path / "throwaway_check.py").write_text(THROWAWAY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(checks.REGISTRY, "steps-seen", "throwaway_check")
    yield "steps-seen"
    sys.modules.pop("throwaway_check", None)


@pytest.fixture
def spec_file(write_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    return write_spec("") + ":good"


def _results(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    doc = json.loads(capsys.readouterr().out)
    return {c["check"]: c for c in doc["checks"]}


def test_a_registered_check_runs_with_its_own_settings(throwaway, spec_file, capsys):
    code = main(
        ["train-check", "--spec", spec_file, "--checks", throwaway, "--set", "steps-seen.steps=40"]
        + ["--format", "json", "--quiet"]
    )
    assert code == 0
    result = _results(capsys)[throwaway]
    # 40 steps, not the 10 another check would need: the session trains as long as the selected checks declare.
    assert result["figures"]["steps_seen"] == 40


def test_a_registered_check_is_its_own_subcommand_and_can_fail(throwaway, spec_file, capsys):
    code = main([throwaway, "--spec", spec_file, "--set", "steps-seen.limit=5", "--format", "json", "--quiet"])
    assert code == 1
    assert _results(capsys)[throwaway]["status"] == "fail"


def test_a_registered_check_runs_in_the_suite_and_reads_pyproject(throwaway, spec_file, tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""\
            [tool.ci-checks.steps-seen]
            steps = 25
            """))
    assert main(["train-check", "--spec", spec_file, "--format", "json", "--quiet"]) == 0
    results = _results(capsys)
    assert list(results)[-1] == throwaway  # registry order
    # The suite's run stops when memorized, but not before the new check's 25 steps.
    assert results[throwaway]["figures"]["steps_seen"] >= 25
    assert results["memorization"]["status"] == "pass"


def test_an_unknown_setting_of_the_registered_check_is_bad_input(throwaway, spec_file, capsys):
    assert main(["train-check", "--spec", spec_file, "--set", "steps-seen.stepz=3", "--quiet"]) == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
