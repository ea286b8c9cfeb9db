"""compare: the working tree's metrics against a base revision, with a per-metric policy and noise-aware tests.

Verdicts per metric: regressed, invalid (NaN, a string, null ...), missing (on the head side), changed (beyond the
noise, no known direction), improved, new (head only), within-noise, unchanged, skipped. The pieces: policy.py
(policies, the direction vocabulary and the verdict of one metric), gate.py (which metrics gate, and the error
control across many: Holm, Benjamini-Hochberg), base_policy.py (the gate is read from the base revision),
base.py (which revision, fetched in shallow clones), trees.py and files.py (reading files of either side),
sources/ (where metrics come from: a small registry), verdicts.py (one result per metric or curve) and core.py
(the report). The command line is ci_checks/commands/compare.py.
"""

from __future__ import annotations

from ci_checks.compare.base import Repo, find_repo, resolve_base
from ci_checks.compare.core import compare
from ci_checks.compare.policy import FAIL_ON, Policy, decide, guess_direction, policy_for

__all__ = [
    "FAIL_ON",
    "Policy",
    "Repo",
    "compare",
    "decide",
    "find_repo",
    "guess_direction",
    "policy_for",
    "resolve_base",
]
