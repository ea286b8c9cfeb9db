"""User configuration: [tool.ci-checks] in the target repository's pyproject.toml, validated."""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ci_checks._errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMATS = ("text", "json", "github")
TOP_LEVEL: dict[str, type | tuple[type, ...]] = {
    "spec": str,
    "format": str,
    "output": str,
    "device": str,
    "seed": int,
    "checks": list,
    "skip": list,
}

# Tables owned by other commands: "module:function" validators, imported only when the table is present.
# Each validator takes (table, where) and returns the validated table or raises UserError.
SECTIONS: dict[str, str] = {
    "compare": "ci_checks.compare:validate_compare",
    "metrics": "ci_checks.compare:validate_metrics",
    "golden": "ci_checks.commands.golden:validate_config",
    "rerun": "ci_checks.commands.rerun:validate_config",
}


def find_pyproject(start: str | None = None) -> str | None:
    """The nearest pyproject.toml at or above start (the working directory by default)."""
    here = os.path.abspath(start or os.getcwd())
    while True:
        candidate = os.path.join(here, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def closest(key: str, valid: Sequence[str], kind: str = "keys") -> str:
    """The "did you mean" hint for an unknown name: the closest valid one, else the list of valid ones."""
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if match:
        return f"did you mean '{match[0]}'?"
    return f"valid {kind}: {', '.join(sorted(valid))}" if valid else f"there are no {kind} configured"


def load_config(path: str | None, *, defaults: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Read and validate [tool.ci-checks]; a missing file or table is an empty configuration."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found; pass an existing pyproject.toml to --config") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML ({e}); fix the file") from None
    table = data.get("tool", {}).get("ci-checks", {})
    return validate_config(table, defaults=defaults, where=f"{path} [tool.ci-checks]")


def validate_config(
    table: Mapping[str, Any], *, defaults: Mapping[str, Mapping[str, Any]], where: str
) -> dict[str, Any]:
    """Check keys and types against the known settings; unknown keys are rejected with the closest valid one."""
    valid = list(TOP_LEVEL) + list(defaults) + list(SECTIONS)
    config: dict[str, Any] = {}
    for key, value in table.items():
        if key in TOP_LEVEL:
            expected = TOP_LEVEL[key]
            if not isinstance(value, expected) or isinstance(value, bool) and expected is int:
                raise UserError(f"{where}: '{key}' must be {_type_name(expected)}, got {value!r}")
            if key == "format" and value not in FORMATS:
                raise UserError(f"{where}: format must be one of {', '.join(FORMATS)}, got {value!r}")
            if key in ("checks", "skip") and isinstance(value, list):
                for name in value:
                    if name not in defaults:
                        hint = closest(str(name), list(defaults), "checks")
                        raise UserError(f"{where}: {key} names unknown check {name!r}; {hint}")
            config[key] = value
        elif key in defaults:
            if not isinstance(value, Mapping):
                raise UserError(f"{where}: '{key}' must be a table ([tool.ci-checks.{key}])")
            config[key] = {k: coerce_setting(key, k, v, defaults[key], where=where) for k, v in value.items()}
        elif key in SECTIONS:
            if not isinstance(value, Mapping):
                raise UserError(f"{where}: '{key}' must be a table ([tool.ci-checks.{key}])")
            module, _, func = SECTIONS[key].partition(":")
            config[key] = getattr(importlib.import_module(module), func)(value, f"{where}.{key}")
        else:
            raise UserError(f"{where}: unknown key '{key}'; {closest(key, valid)}")
    return config


def coerce_setting(check: str, key: str, value: Any, known: Mapping[str, Any], *, where: str) -> Any:
    """Validate one per-check setting against its default's type."""
    if key not in known:
        hint = closest(key, list(known)) if known else f"'{check}' takes no settings"
        raise UserError(f"{where}: unknown setting '{check}.{key}'; {hint}")
    default = known[key]
    value = _typed(check, key, value, default, where)
    low = _MINIMUM.get(key.rpartition("-")[2])
    if low is not None and value is not None and value < low:
        raise UserError(f"{where}: '{check}.{key}' must be at least {low}, got {value!r}")
    return value


# Lower bounds, by the setting's name or its last word: step counts need a step, tolerances can't be negative.
_MINIMUM: dict[str, float] = {
    "steps": 1,
    "before": 1,
    "after": 1,
    "seconds": 0.0,
    "rtol": 0.0,
    "atol": 0.0,
    "tolerance": 0.0,
    "accuracy": 0.0,
    "ratio": 1.0,
}


def _typed(check: str, key: str, value: Any, default: Any, where: str) -> Any:
    if value is None or default is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(value, bool) and isinstance(default, bool):
            return value
    elif isinstance(default, int) and isinstance(value, int):
        return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    wanted = "a number" if default is None else _TYPE_WORDS.get(type(default), type(default).__name__)
    raise UserError(f"{where}: '{check}.{key}' must be {wanted}, got {value!r}")


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def parse_value(text: str) -> Any:
    """Parse a --set value the way TOML would (numbers, booleans), else keep the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _type_name(t: type | tuple[type, ...]) -> str:
    return {str: "a string", int: "an integer", list: "a list"}.get(t if isinstance(t, type) else str, str(t))
