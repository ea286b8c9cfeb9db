"""pytest plugin: a `train_check` fixture and marker, so users write the training checks as their own tests.

    @pytest.mark.train_check
    def test_training(train_check):
        train_check.assert_trains("ci_spec.py:training_spec")

Select the fast tier with ``pytest -m train_check`` (or leave it out with ``-m "not train_check"``).
Tests that use the fixture get the marker automatically.

Each run leaves the test process as it found it (ci_checks.testing.isolated_run): the global random state, sys.path
and the modules of the test's own project are given back, so specs in several folders, each with its own model.py,
pass in any order and split across pytest-xdist workers.
"""

from __future__ import annotations

import os
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
        help="default training spec for the train_check fixture, a path relative to the invocation directory "
        "(default: [tool.ci-checks] spec, relative to its pyproject.toml)",
    )
    group.addoption("--ci-checks-device", default=None, help="torch device for the training checks")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: ci-checks training smoke checks (fast tier: -m {MARKER})")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MARKER in getattr(item, "fixturenames", ()) and item.get_closest_marker(MARKER) is None:
            item.add_marker(MARKER)


class TrainCheck:
    """What the `train_check` fixture gives a test: run the checks, or assert they pass.

    Relative spec paths do not depend on the directory pytest runs from: a spec given in the test and
    ``[tool.ci-checks] spec`` are relative to the project (the folder of the pyproject.toml nearest the test file,
    else pytest's rootdir); ``--ci-checks-spec``, like pytest's own command-line paths, to the directory pytest
    was invoked from.
    """

    def __init__(
        self,
        default_spec: str | None,
        device: str | None,
        *,
        pyproject: str | None = None,
        project_dir: str | None = None,
        invocation_dir: str | None = None,
    ) -> None:
        self.default_spec = default_spec
        self.device = device
        self.pyproject = pyproject
        self.project_dir = project_dir or (os.path.dirname(pyproject) if pyproject else os.getcwd())
        self.invocation_dir = invocation_dir or os.getcwd()

    def _spec(self, spec: TrainingSpec | Mapping[str, Any] | str | None) -> TrainingSpec | Mapping[str, Any] | str:
        from ci_checks.spec import anchor_spec_ref

        if spec is not None:
            return anchor_spec_ref(spec, self.project_dir) if isinstance(spec, str) else spec
        if self.default_spec:
            return anchor_spec_ref(self.default_spec, self.invocation_dir)
        from ci_checks import config as _config
        from ci_checks.checks import default_settings

        configured = _config.load_config(self.pyproject, defaults=default_settings()).get("spec")
        if not configured:
            where = f" in {self.pyproject}" if self.pyproject else ""
            pytest.fail(
                "train_check: no spec given; pass one, use --ci-checks-spec, or set [tool.ci-checks] spec" + where,
                pytrace=False,
            )
        return anchor_spec_ref(str(configured), os.path.dirname(str(self.pyproject)))

    def run(
        self,
        spec: TrainingSpec | Mapping[str, Any] | str | None = None,
        checks: Sequence[str] | None = None,
        *,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Report:
        from ci_checks.testing import isolated_run, run_training_checks

        with isolated_run():  # what finding the spec adds to sys.path goes again with the run
            return run_training_checks(self._spec(spec), checks, settings=settings, device=self.device)

    def assert_trains(
        self,
        spec: TrainingSpec | Mapping[str, Any] | str | None = None,
        checks: Sequence[str] | None = None,
        *,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        allow_warnings: bool = True,
    ) -> Report:
        from ci_checks.testing import assert_trains, isolated_run

        with isolated_run():
            return assert_trains(
                self._spec(spec), checks, settings=settings, device=self.device, allow_warnings=allow_warnings
            )


@pytest.fixture
def train_check(request: pytest.FixtureRequest) -> TrainCheck:
    """Run ci-checks' training checks from a test."""
    from ci_checks.config import find_pyproject

    config = request.config
    rootdir = str(config.rootpath)
    # The pyproject.toml nearest the test file, not the working directory: `pytest proj/tests` from a parent
    # folder and `pytest` from proj/tests read the same [tool.ci-checks].
    pyproject = find_pyproject(str(request.path.parent)) or find_pyproject(rootdir)
    return TrainCheck(
        config.getoption("--ci-checks-spec"),
        config.getoption("--ci-checks-device"),
        pyproject=pyproject,
        project_dir=os.path.dirname(pyproject) if pyproject else rootdir,
        invocation_dir=str(config.invocation_params.dir),
    )
