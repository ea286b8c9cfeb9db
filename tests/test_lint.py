"""black and flake8 on the whole repository, with the settings .pre-commit-config.yaml uses."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PATHS = ["ci_checks", "tests", "examples", "benchmarks"]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["black", "--check", "--quiet", *PATHS], id="black"),
        pytest.param(["flake8", "--max-line-length=120", "--extend-ignore=E203,W503", *PATHS], id="flake8"),
    ],
)
def test_code_is_formatted_and_clean(command: list[str]) -> None:
    tool = shutil.which(command[0], path=str(pathlib.Path(sys.executable).parent))
    if tool is None:
        pytest.skip(f"{command[0]} is in the lint extra: pip install -e '.[lint]'")
    result = subprocess.run([tool, *command[1:]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
