"""ci-checks: catch silently broken deep-learning training before merge."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ci_checks.spec import TrainingSpec, load_from_script, synthetic_batch

try:
    __version__ = version("ci-checks")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["TrainingSpec", "__version__", "load_from_script", "synthetic_batch"]
