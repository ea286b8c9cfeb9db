"""User configuration: [tool.ci-checks] in the target repository's pyproject.toml, declared once and validated.

`schema()` is the one description of every table. Every command (through load_config), the validate-config hook
and the published JSON Schema (ci_checks/schema/ci-checks.schema.json) use it. A check's table comes from its
SETTINGS when the schema is built, so a check registered later is configurable too.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ci_checks._errors import UserError
from ci_checks.schema import (  # noqa: F401 - re-exported: the config API names them
    DIRECTIONS,
    FAIL_ON,
    FORMATS,
    MINIMUM,
    REGENERATE,
    SCHEMA_FILE,
    TABLES,
    TESTS,
    ArrayOf,
    Field,
    MapOf,
    Node,
    Table,
    json_schema,
    schema,
    settings_table,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# ---------------------------------------------------------------- reading and validating


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
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a config file; pass its pyproject.toml to --config") from None
    except OSError as e:
        raise UserError(
            f"{path}: cannot read the config file ({e.strerror or e}); pass a readable pyproject.toml"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML ({e}); fix the file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (not UTF-8), so not a pyproject.toml; pass the right file") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a pyproject.toml; fix the file") from None
    tool = data.get("tool", {})
    if not isinstance(tool, Mapping):
        raise UserError(f"{path}: 'tool' must be a table ([tool]), got {tool!r}")
    return validate_config(tool.get("ci-checks", {}), defaults=defaults, where=f"{path} [tool.ci-checks]")


def validate_config(
    table: Mapping[str, Any], *, defaults: Mapping[str, Mapping[str, Any]], where: str
) -> dict[str, Any]:
    """Check [tool.ci-checks] against the schema; the commands' tables come back with their defaults filled in."""
    at = _Where.parse(where)
    if not isinstance(table, Mapping):
        raise UserError(f"{at.prefix or where}: 'tool.ci-checks' must be a table ([tool.ci-checks]), got {table!r}")
    return _table(schema(defaults), table, at)


def validate_section(name: str, table: Mapping[str, Any] | None = None, *, where: str | None = None) -> dict[str, Any]:
    """Check one command's table (compare, golden, rerun) and fill in its defaults; with none, the defaults."""
    at = _Where.parse(where or f"[tool.ci-checks.{name}]")
    if not isinstance(table or {}, Mapping):
        raise UserError(f"{at}: must be a table, got {table!r}")
    return _table(TABLES[name], table or {}, at)


def coerce_setting(check: str, key: str, value: Any, known: Mapping[str, Any], *, where: str) -> Any:
    """Validate one per-check setting against its default's type."""
    return _key(settings_table(check, known), key, value, _Where.parse(where))


def parse_value(text: str) -> Any:
    """Parse a --set value the way TOML would (numbers, booleans), else keep the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_TYPE_WORDS: dict[type, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    dict: "a table",
}


@dataclass(frozen=True)
class _Where:
    """Where a message points: the file, and the TOML table as its header would name it."""

    prefix: str
    header: tuple[str, ...] = ()

    @classmethod
    def parse(cls, where: str) -> _Where:
        match = re.fullmatch(r"(.*?) ?\[([^\[\]]+)\]", where)
        return cls(match[1], (match[2],)) if match else cls(where)

    def sub(self, path: str) -> _Where:
        return _Where(self.prefix, (*self.header, path))

    def header_of(self, path: str) -> str:
        return f"[{'.'.join((*self.header, path))}]"

    def __str__(self) -> str:
        header = f"[{'.'.join(self.header)}]" if self.header else ""
        return " ".join(part for part in (self.prefix, header) if part)


def _path(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _check(node: Node, value: Any, at: _Where, name: str, path: str, *, setting: bool = False) -> Any:
    """The value of `name` (written `path` in a TOML header) in the table `at`, validated, defaults filled in."""
    if isinstance(node, Field):
        return _field(node, value, at, name, setting)
    if isinstance(node, Table):
        if node.shorthand and isinstance(value, str):
            value = {node.shorthand: value}
        if not isinstance(value, Mapping):
            raise _wrong(at, name, node.expected or f"a table ({at.header_of(path)})", value)
        return _table(node, value, at if node.check else at.sub(path))
    if isinstance(node, MapOf):
        if not isinstance(value, Mapping):
            raise _wrong(at, name, node.expected or f"a table ({at.header_of(path)})", value)
        inner = at.sub(path)
        return {str(k): _check(node.value, v, inner, str(k), _path(str(k))) for k, v in value.items()}
    if node.single and isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _wrong(at, name, node.expected or "a list", value)
    items = [_check(node.item, v, at, f"{name}[{i}]", f"{path}[{i}]") for i, v in enumerate(value)]
    if node.unique:
        seen: set[Any] = set()
        for i, item in enumerate(items):
            if item[node.unique] in seen:
                raise UserError(
                    f"{at}: {name}[{i}] repeats {node.unique} {item[node.unique]!r}; give each a {node.unique} "
                    "of its own"
                )
            seen.add(item[node.unique])
    return items


def _table(table: Table, value: Mapping[str, Any], at: _Where) -> dict[str, Any]:
    out = {str(key): _key(table, str(key), item, at) for key, item in value.items()}
    for key, node in table.fields.items():
        if key in out:
            continue
        if isinstance(node, Field) and node.required:
            help = f" ({node.help[:1].lower()}{node.help[1:].rstrip('.')})" if node.help else ""
            raise UserError(f"{at}: missing required key '{key}'{help}")
        if table.fill:
            out[key] = _default(node)
    return out


def _key(table: Table, key: str, value: Any, at: _Where) -> Any:
    node = table.fields.get(key)
    if node is None and table.check:
        hint = closest(key, list(table.fields)) if table.fields else f"'{table.check}' takes no settings"
        raise UserError(f"{at}: unknown setting '{table.check}.{key}'; {hint}")
    if node is None:
        raise UserError(f"{at}: unknown key '{key}'; {closest(key, list(table.fields))}")
    if table.check:
        return _check(node, value, at, f"{table.check}.{key}", _path(key), setting=True)
    return _check(node, value, at, key, _path(key))


def _field(field: Field, value: Any, at: _Where, name: str, setting: bool) -> Any:
    if value is None and (field.nullable or field.default is None and not field.required):
        return None
    types = field.type if isinstance(field.type, tuple) else (field.type,)
    number = float in types and isinstance(value, int)
    if isinstance(value, bool) and bool not in types or not (isinstance(value, types) or number):
        raise _wrong(at, name, field.expected or _type_words(types), value)
    if field.type is float:
        value = float(value)
    if _valid(field, value):
        return value
    label = f"'{name}'" if setting else name
    if field.nonempty and value == "":
        raise UserError(f"{at}: {label} must not be empty, got ''")
    if field.noun:
        listed = name.rpartition("[")[0] or name
        hint = closest(value, field.choices, f"{field.noun}s")
        raise UserError(f"{at}: {listed} names unknown {field.noun} {value!r}; {hint}")
    match = difflib.get_close_matches(value, field.choices, n=1, cutoff=0.5) if isinstance(value, str) else []
    hint = f"; did you mean '{match[0]}'?" if match else ""
    raise UserError(f"{at}: {label} must be {field.expected or _constraint(field, value)}, got {value!r}{hint}")


def _valid(field: Field, value: Any) -> bool:
    if field.choices and value not in field.choices or field.nonempty and value == "":
        return False
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    bounded = (field.minimum, field.exclusive_minimum, field.exclusive_maximum) != (None, None, None)
    if field.finite and not math.isfinite(value) or bounded and math.isnan(value):  # NaN passes every comparison
        return False
    return not (
        field.minimum is not None
        and value < field.minimum
        or field.exclusive_minimum is not None
        and value <= field.exclusive_minimum
        or field.exclusive_maximum is not None
        and value >= field.exclusive_maximum
    )


def _constraint(field: Field, value: Any) -> str:
    low, high = field.exclusive_minimum, field.exclusive_maximum
    if field.choices:
        return f"one of {', '.join(field.choices)}"
    if field.finite and isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    if low is not None and high is not None:
        return f"a number between {low:g} and {high:g} (exclusive)"
    if low == 0:
        return "a positive number"
    if low is not None:
        return f"greater than {low:g}"
    if field.minimum is not None:
        return f"at least {field.minimum:g}"
    return "valid"


def _type_words(types: tuple[type, ...]) -> str:
    if set(types) == {int, float}:
        return "a number"
    return " or ".join(_TYPE_WORDS.get(t, t.__name__) for t in types)


def _wrong(at: _Where, name: str, expected: str, value: Any) -> UserError:
    return UserError(f"{at}: '{name}' must be {expected}, got {value!r}")


def _default(node: Node) -> Any:
    if isinstance(node, Field):
        return copy.deepcopy(node.default)
    if isinstance(node, ArrayOf):
        return copy.deepcopy(list(node.default))
    if isinstance(node, Table) and node.fill:
        return {k: _default(n) for k, n in node.fields.items() if not (isinstance(n, Field) and n.required)}
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ci_checks.config", description="The [tool.ci-checks] schema.")
    parser.add_argument("--json-schema", action="store_true", required=True, help="print it as JSON Schema")
    parser.parse_args(argv)
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
