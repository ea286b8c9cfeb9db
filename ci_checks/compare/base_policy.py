"""The gate comes from the base branch: the policy that decides pass or fail is read from the base revision.

A pull request that edits [tool.ci-checks.compare] or [tool.ci-checks.metrics] in its own pyproject.toml cannot
loosen the gate that judges it: fail-on, gate, correction, steps-ratio, base, dvc and every metric policy come from
the base revision's pyproject.toml (from the saved results' record with --base-metrics-json); the report lists
what the pull request changes, and the change applies once it is merged. The files to read (files, curves, params)
are the union of both sides', so a pull request that adds a metrics file has it compared at once.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_checks._errors import UserError
from ci_checks.compare.trees import Tree

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GATE_KEYS = ("fail-on", "gate", "correction", "steps-ratio", "base", "dvc")
UNION_KEYS = ("files", "curves", "params")


@dataclass
class EffectivePolicy:
    """The compare settings and metric policies this run is judged by, where they come from, and what differs."""

    settings: dict[str, Any]
    policies: dict[str, Any]
    source: str  # e.g. "main (1a2b3c4)", "the working tree", "the saved results"
    changes: list[dict[str, Any]] = field(default_factory=list)  # {key, base, head}: what the pull request changes
    note: str | None = None  # why the working tree's policy decides, or what was wrong with the base's
    from_base: bool = False  # judged by the base's (or the saved results') policy, not the working tree's

    def record(self) -> dict[str, Any]:
        """The policy as the results document records it (subject.policy), for a later --base-metrics-json."""
        return {
            "source": self.source,
            "compare": {k: self.settings.get(k) for k in GATE_KEYS},
            "metrics": self.policies,
            "changes": self.changes,
            "note": self.note,
        }


def read_config(tree: Tree, path: str, where: str) -> dict[str, Any] | None:
    """[tool.ci-checks] of the pyproject.toml at path in tree, validated; None when the file is not there."""
    from ci_checks.checks import default_settings
    from ci_checks.config import validate_config

    data = tree.read(path)
    if data is None:
        return None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: invalid TOML ({e})") from None
    tool = doc.get("tool", {})
    table = tool.get("ci-checks", {}) if isinstance(tool, Mapping) else {}
    return validate_config(table, defaults=default_settings(), where=f"{where} [tool.ci-checks]")


def effective(
    base_settings: Mapping[str, Any],
    base_policies: Mapping[str, Any],
    head_settings: Mapping[str, Any],
    head_policies: Mapping[str, Any],
    *,
    source: str,
    note: str | None = None,
) -> EffectivePolicy:
    """The base's gate and policies, the union of both sides' files, and the list of what the head changes."""
    settings = dict(head_settings)
    for key in GATE_KEYS:
        settings[key] = base_settings.get(key)
    for key in UNION_KEYS:
        merged = list(base_settings.get(key) or [])
        seen = [_identity(e) for e in merged]
        for entry in head_settings.get(key) or []:
            if _identity(entry) not in seen:
                merged.append(entry)
                seen.append(_identity(entry))
        settings[key] = merged
    changes = diff(base_settings, base_policies, head_settings, head_policies)
    return EffectivePolicy(settings, dict(base_policies), source, changes, note, from_base=True)


def _identity(entry: Any) -> Any:
    return entry.get("path") if isinstance(entry, Mapping) else entry


def diff(
    base_settings: Mapping[str, Any],
    base_policies: Mapping[str, Any],
    head_settings: Mapping[str, Any],
    head_policies: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Every compare key and metric policy key whose value the head changes: {key, base, head} (None: not set)."""
    changes: list[dict[str, Any]] = []
    for key in dict.fromkeys([*base_settings, *head_settings]):
        if key == "fetch-depth":
            continue  # how to fetch, not what passes
        old, new = base_settings.get(key), head_settings.get(key)
        if old != new:
            changes.append({"key": f"compare.{key}", "base": old, "head": new})
    for name in dict.fromkeys([*base_policies, *head_policies]):
        old_table, new_table = base_policies.get(name) or {}, head_policies.get(name) or {}
        for key in dict.fromkeys([*old_table, *new_table]):
            old, new = old_table.get(key), new_table.get(key)
            if old != new:
                changes.append({"key": f'metrics."{name}".{key}', "base": old, "head": new})
    return changes


def from_record(
    record: Mapping[str, Any], head_settings: Mapping[str, Any], head_policies: Mapping[str, Any]
) -> EffectivePolicy:
    """The policy saved results were judged by (their subject.policy), applied to this run."""
    from ci_checks.config import validate_config, validate_section
    from ci_checks.checks import default_settings

    compare = record.get("compare") if isinstance(record.get("compare"), Mapping) else {}
    metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
    try:
        base_settings = validate_section(
            "compare", {k: v for k, v in (compare or {}).items() if v is not None}, where="saved results' policy"
        )
        base_policies = validate_config(
            {"metrics": dict(metrics or {})}, defaults=default_settings(), where="saved results' policy"
        ).get("metrics", {})
    except UserError as e:
        return EffectivePolicy(
            dict(head_settings),
            dict(head_policies),
            "the working tree",
            note=f"the saved results' policy is not valid for this version ({e}); the working tree's decides",
        )
    # The saved record holds only the gate keys: the files to read stay the working tree's.
    merged = {**base_settings, **{k: head_settings.get(k) for k in UNION_KEYS}}
    return effective(merged, base_policies, head_settings, head_policies, source="the saved results")
