"""Reading the results documents that the compare tests write."""

from __future__ import annotations

from typing import Any

# A project whose metrics live in one file that compare reads.
CONFIG = '[tool.ci-checks.compare]\nfiles = ["metrics.json"]\n'


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    """Each metric result's verdict, by name."""
    return {c["check"]: c["figures"]["verdict"] for c in doc["checks"] if c["figures"].get("kind") == "metric"}


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The result named name."""
    return next(c for c in doc["checks"] if c["check"] == name)
