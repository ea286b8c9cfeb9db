"""compare: the working tree's metrics against the base branch's, per-metric policy and seed-aware verdicts."""

from __future__ import annotations

from ci_checks.compare import HELP, add_arguments, run

__all__ = ["HELP", "add_arguments", "run"]
