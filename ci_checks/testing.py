"""Assert helpers for users who write the training checks as tests of their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ci_checks.results import Report
    from ci_checks.spec import TrainingSpec


class TrainingCheckFailed(AssertionError):
    """Raised by assert_trains with the failing checks' one-line messages."""


def run_training_checks(
    spec: TrainingSpec | Mapping[str, Any] | str,
    checks: Sequence[str] | None = None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
) -> Report:
    """Run the training checks on a spec (TrainingSpec, dict, or 'file.py:func') and return the report."""
    from ci_checks.checks import names, run_checks
    from ci_checks.spec import from_mapping, validate

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
