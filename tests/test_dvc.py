"""ci_checks/_dvc.py, the one way of finding and running DVC: its module in this interpreter, else PATH."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from ci_checks import _dvc
from ci_checks._errors import UserError


def test_dvc_module_first_then_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "dvc" else real(name))
    assert _dvc.dvc_command() == [sys.executable, "-m", "dvc"]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "dvc" else real(name))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _dvc.dvc_command() is None
    exe = tmp_path / "dvc"
    exe.write_text("#!/bin/sh\necho '{\"ok\": true}'\n")
    exe.chmod(0o755)
    assert _dvc.dvc_command() == [str(exe)]
    assert _dvc.run_json(["metrics", "show", "--json"], str(tmp_path), print) == {"ok": True}


def test_missing_dvc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_dvc, "dvc_command", lambda: None)
    logged: list[str] = []
    assert _dvc.run_json(["metrics", "show"], str(tmp_path), logged.append) is None
    assert logged == [
        "dvc is not installed, so `dvc metrics show` was skipped; install it (pip install 'ci-checks[dvc]')"
    ]
    with pytest.raises(UserError, match=r"^dvc is not installed and rerun needs it; install it \(pip install"):
        _dvc.run(["checkout"], str(tmp_path), why="rerun needs it")


def test_a_failing_dvc_command_is_logged_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    exe = tmp_path / "dvc"
    exe.write_text("#!/bin/sh\necho 'ERROR: first' >&2\necho 'ERROR: not a DVC repository' >&2\nexit 1\n")
    exe.chmod(0o755)
    monkeypatch.setattr(_dvc, "dvc_command", lambda: [str(exe)])
    logged: list[str] = []
    assert _dvc.run_json(["metrics", "diff"], str(tmp_path), logged.append) is None
    assert logged == ["`dvc metrics diff` failed: ERROR: not a DVC repository"]
