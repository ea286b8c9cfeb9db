"""Assert helpers for users who write the training checks as tests of their own.

They run inside the user's own process (pytest, a notebook), so a run leaves that process as it found it: the
global random state (torch, CUDA, random, numpy) is restored, the spec's folder leaves sys.path again and the
modules it imported from there (its model.py) are unbound, so the user's own `import model` and a later spec from
another folder get their own; and the code under test cannot end the process (os._exit, a signal to itself).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ci_checks.results import Report
    from ci_checks.spec import TrainingSpec


class TrainingCheckFailed(AssertionError):
    """Raised by assert_trains with the failing checks' one-line messages."""


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Give back torch's (and CUDA's), random's and numpy's global random state after the block."""
    from ci_checks.engine.seeding import rng_state, set_rng_state

    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


@contextlib.contextmanager
def preserved_imports() -> Iterator[None]:
    """Give back sys.path and the user's module bindings after the block.

    A module the block imported from a spec's folder (the spec's model.py) is unbound again, so it cannot shadow
    the user's module of the same name; the spec loader keeps it for that spec's next run. Everything else the
    block imported (torch, the user's package) stays loaded.
    """
    from ci_checks.spec import from_spec_folder

    path = list(sys.path)
    modules = dict(sys.modules)
    try:
        yield
    finally:
        sys.path[:] = path
        for name, module in list(sys.modules.items()):
            if name in modules:
                if modules[name] is not module:
                    sys.modules[name] = modules[name]
            elif module is not None and from_spec_folder(module):
                del sys.modules[name]
        for name, module in modules.items():
            sys.modules.setdefault(name, module)


@contextlib.contextmanager
def isolated_run() -> Iterator[None]:
    """Run training checks inside a user's process: its random state and imports are given back afterwards, and
    the code under test cannot end the process (os._exit, os.abort, a signal to itself raise instead)."""
    from ci_checks._errors import guard_process_exits

    with preserved_imports(), preserved_rng_state(), guard_process_exits():
        yield


def run_training_checks(
    spec: TrainingSpec | Mapping[str, Any] | str,
    checks: Sequence[str] | None = None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
) -> Report:
    """Run the training checks on a spec (TrainingSpec, dict, or 'file.py:func') and return the report.

    The caller's global random state and imports are as they were afterwards (see isolated_run).
    """
    from ci_checks.checks import names, run_checks
    from ci_checks.spec import from_mapping, validate

    with isolated_run():
        if isinstance(spec, Mapping):
            spec = validate(from_mapping(spec, check_names=names()), where="spec")
        return run_checks(spec, list(checks or names()), settings=settings, device=device)


def assert_trains(
    spec: TrainingSpec | Mapping[str, Any] | str,
    checks: Sequence[str] | None = None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
    allow_warnings: bool = True,
) -> Report:
    """Fail the calling test with each failing check's message unless every check passes."""
    report = run_training_checks(spec, checks, settings=settings, device=device)
    bad = {"fail"} if allow_warnings else {"fail", "warn"}
    failing = [c for c in report.checks if c.status in bad]
    if failing:
        lines = [f.message for c in failing for f in c.findings if f.severity in ("error", "warning")]
        raise TrainingCheckFailed(f"{len(failing)} training check(s) failed:\n  " + "\n  ".join(lines))
    return report
