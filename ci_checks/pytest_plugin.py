"""pytest plugin: a `train_check` fixture and marker, so users write the training checks as their own tests.

    @pytest.mark.train_check
    def test_training(train_check):
        train_check.assert_trains("ci_spec.py:training_spec")

Select the fast tier with ``pytest -m train_check`` (or leave it out with ``-m "not train_check"``).
Tests that use the fixture get the marker automatically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ci_checks.results import Report
    from ci_checks.spec import TrainingSpec

MARKER = "train_check"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ci-checks")
    group.addoption(
        "--ci-checks-spec",
        default=None,
        metavar="FILE.py:FUNC",
        help="default training spec for the train_check fixture (default: [tool.ci-checks] spec)",
    )
    group.addoption("--ci-checks-device", default=None, help="torch device for the training checks")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: ci-checks training smoke checks (fast tier: -m {MARKER})")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MARKER in getattr(item, "fixturenames", ()) and item.get_closest_marker(MARKER) is None:
            item.add_marker(MARKER)


class TrainCheck:
    """What the `train_check` fixture gives a test: run the checks, or assert they pass."""

    def __init__(self, default_spec: str | None, device: str | None) -> None:
        self.default_spec = default_spec
        self.device = device

    def _spec(self, spec: TrainingSpec | Mapping[str, Any] | str | None) -> TrainingSpec | Mapping[str, Any] | str:
        if spec is not None:
            return spec
        if self.default_spec:
            return self.default_spec
        from ci_checks import config as _config

        path = _config.find_pyproject()
        from ci_checks.checks import default_settings

        configured = _config.load_config(path, defaults=default_settings()).get("spec")
        if not configured:
            pytest.fail(
                "train_check: no spec given; pass one, use --ci-checks-spec, or set [tool.ci-checks] spec",
                pytrace=False,
            )
        return str(configured)

    def run(
        self,
        spec: TrainingSpec | Mapping[str, Any] | str | None = None,
        checks: Sequence[str] | None = None,
        *,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Report:
        from ci_checks.testing import run_training_checks

        return run_training_checks(self._spec(spec), checks, settings=settings, device=self.device)

    def assert_trains(
        self,
        spec: TrainingSpec | Mapping[str, Any] | str | None = None,
        checks: Sequence[str] | None = None,
        *,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        allow_warnings: bool = True,
    ) -> Report:
        from ci_checks.testing import assert_trains

        return assert_trains(
            self._spec(spec), checks, settings=settings, device=self.device, allow_warnings=allow_warnings
        )


@pytest.fixture
def train_check(request: pytest.FixtureRequest) -> TrainCheck:
    """Run ci-checks' training checks from a test."""
    return TrainCheck(request.config.getoption("--ci-checks-spec"), request.config.getoption("--ci-checks-device"))
