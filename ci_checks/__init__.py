"""ci-checks: catch silently broken deep-learning training before merge.

The spec helpers load on first use, so `ci-checks` starts (and Ctrl-C during its start is handled) without
importing the spec machinery first.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("ci-checks")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from ci_checks.spec import TrainingSpec, load_from_script, synthetic_batch

__all__ = ["TrainingSpec", "__version__", "load_from_script", "synthetic_batch"]


def __getattr__(name: str) -> Any:
    if name in ("TrainingSpec", "load_from_script", "synthetic_batch"):
        from ci_checks import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'ci_checks' has no attribute {name!r}")
