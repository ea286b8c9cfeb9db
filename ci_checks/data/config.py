"""The datasets of [tool.ci-checks.data]: what to read, how to check it, and the drift thresholds."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_checks._errors import UserError

DRIFT_KEYS = ("psi", "alpha", "null-rate", "class-share", "size-change", "fail-on")  # the gate: from the base's config


@dataclass
class Dataset:
    """One dataset of [tool.ci-checks.data.datasets]: a tabular file or a spec of samples."""

    name: str
    root: str  # the folder of the pyproject.toml that declares it: relative paths start there
    settings: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.settings.get(key)
        return default if value is None else value

    @property
    def path(self) -> str | None:
        path = self.settings.get("path")
        return None if path is None else os.path.normpath(os.path.join(self.root, str(path)))

    @property
    def relpath(self) -> str | None:
        """The path as the config writes it, relative to the config's folder."""
        path = self.settings.get("path")
        return None if path is None else str(path)

    @property
    def spec(self) -> str | None:
        spec = self.settings.get("spec")
        return None if spec is None else str(spec)

    @property
    def key(self) -> list[str]:
        return [str(k) for k in self.settings.get("key") or []]

    @property
    def where(self) -> str:
        """How messages name its configuration."""
        return f"[tool.ci-checks.data.datasets.{self.name}]"


def datasets(config: Mapping[str, Any], config_path: str | None, names: Sequence[str] = ()) -> list[Dataset]:
    """The configured datasets (those named, when names are given), each checked to say what to read."""
    data = config.get("data") or {}
    table = data.get("datasets") or {}
    where = config_path or "pyproject.toml"
    if not table:
        raise UserError(
            f"{where}: no datasets under [tool.ci-checks.data.datasets]; declare one, e.g. "
            '[tool.ci-checks.data.datasets.train] path = "data/train.csv" (see docs/data.md)'
        )
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UserError(
            f"{where}: no dataset named {unknown[0]!r} under [tool.ci-checks.data.datasets]; configured: "
            + ", ".join(sorted(table))
        )
    root = os.path.dirname(os.path.abspath(config_path)) if config_path else os.getcwd()
    out = []
    for name, settings in table.items():
        if names and name not in names:
            continue
        ds = Dataset(str(name), root, dict(settings))
        if ds.path is None and ds.spec is None:
            raise UserError(
                f"{where} {ds.where}: set path (a CSV, Parquet or JSON lines file) or spec (FILE.py:FUNCTION "
                "returning samples; with a path too, the function is given it)"
            )
        share = ds.settings.get("max-class-share")
        if share is not None and share > 1:
            raise UserError(f"{where} {ds.where}: max-class-share must be at most 1, got {share}")
        out.append(ds)
    return out


def drift_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The drift thresholds of a [tool.ci-checks] table, defaults filled in."""
    from ci_checks.config import validate_section

    data = dict(config.get("data") or validate_section("data"))
    return {k: data.get(k) for k in DRIFT_KEYS}
