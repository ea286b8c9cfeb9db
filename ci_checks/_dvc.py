"""The one way of finding and running DVC: its module in this interpreter first, then a `dvc` on PATH.

DVC is never imported here: it runs as a process, so `ci-checks --help` and git-only projects do not pay for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ci_checks._errors import UserError

INSTALL = "install it (pip install 'ci-checks[dvc]')"
ENV = {"DVC_NO_ANALYTICS": "1"}


def dvc_command() -> list[str] | None:
    """The command that starts DVC, or None when it is not installed."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    exe = shutil.which("dvc")
    return [exe] if exe else None


def require(why: str) -> list[str]:
    """dvc_command(), or a UserError that says why DVC is needed and how to install it."""
    dvc = dvc_command()
    if dvc is None:
        raise UserError(f"dvc is not installed and {why}; {INSTALL}")
    return dvc


def run(
    args: Sequence[str], cwd: str, *, why: str = "this step needs it", timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `dvc ARGS` in cwd and capture its output; the caller inspects the return code.

    With a timeout, a DVC that is still running then (a remote that never answers) is killed and UserError raised.
    """
    try:
        return subprocess.run(
            [*require(why), *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, **ENV},
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"`dvc {' '.join(args)}` did not finish within {timeout:g} s and was stopped; check that the DVC remote "
            "is reachable from here (dvc remote list), or raise timeout-minutes"
        ) from None


def last_line(out: subprocess.CompletedProcess[str]) -> str:
    """The last line DVC wrote (stderr, then stdout), else its exit code: why it failed, in one line."""
    lines = [line.strip() for line in (out.stderr + "\n" + out.stdout).splitlines() if line.strip()]
    return lines[-1][:200] if lines else f"exit code {out.returncode}"


def run_json(args: Sequence[str], cwd: str, log: Callable[[str], None]) -> Any:
    """The JSON DVC prints for `dvc ARGS`, or None (logged) when DVC is missing or fails."""
    import json

    if dvc_command() is None:
        log(f"dvc is not installed, so `dvc {' '.join(args)}` was skipped; {INSTALL}")
        return None
    out = run(args, cwd)
    if out.returncode != 0:
        log(f"`dvc {' '.join(args)}` failed: {last_line(out)}")
        return None
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None
