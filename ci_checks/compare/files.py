"""Reading metrics, curves and params from one side of the comparison (a Tree), and flattening them to numbers.

A metric is named ``file:key.sub`` (``metrics/eval.json:accuracy``); a key that itself holds a dot is quoted
(``file:"val.acc"``), so ``{"val.acc": ..}`` and ``{"val": {"acc": ..}}`` stay two metrics. Its value is a list of
samples: one number, a list of numbers (seeds), or one number per file of a glob (``metrics/seed_*.json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_checks._errors import UserError
from ci_checks.compare.trees import GLOB_CHARS, Tree

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CURVE_SUFFIXES = (".csv", ".tsv", ".json")
Curve = tuple[str, dict[str, list[float]]]  # x column name, columns by name


# ---------------------------------------------------------------- parsing


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise UserError("reading YAML needs PyYAML; install it (pip install pyyaml)") from None
    return yaml


MAX_DEPTH = 64  # nesting deeper than this is no metrics file (and would exhaust the recursion of its readers)


def parse_document(data: bytes, path: str, where: str) -> Any:
    """Parse a JSON, YAML or TOML file by its suffix; raise UserError naming the file and the parse error."""
    try:
        document = _parse(data, path, where)
    except RecursionError:
        document = None
        deep = True
    else:
        deep = _depth(document) > MAX_DEPTH
    if deep:
        raise UserError(f"{where}: nested more than {MAX_DEPTH} levels deep; not a metrics file") from None
    return document


def _depth(document: Any) -> int:
    """How deeply lists and tables nest, without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _parse(data: bytes, path: str, where: str) -> Any:
    text = data.decode("utf-8-sig", "replace")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{where}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                "fix the file or the step that writes it"
            ) from None
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{where}: invalid TOML ({e}); fix the file or the step that writes it") from None
    # .yaml, .yml and anything else: YAML, a superset of JSON, as DVC reads metrics files.
    yaml = _yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise UserError(f"{where}: invalid YAML ({problem}{at}); fix the file or the step that writes it") from None


def parse_table(data: bytes, path: str, where: str) -> tuple[list[str], list[dict[str, str]]]:
    """Parse a CSV or TSV file into its header and rows."""
    text = data.decode("utf-8-sig", "replace")
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    try:
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, strict=True)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    except csv.Error as e:
        raise UserError(f"{where}: invalid CSV ({e}); fix the file or the step that writes it") from None
    for n, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise UserError(
                f"{where}: invalid CSV (line {n} has {'more' if None in row else 'fewer'} fields than "
                f"the header's {len(header)}); fix the file or the step that writes it"
            )
    return header, rows


# ---------------------------------------------------------------- values


@dataclass
class Metric:
    """One metric on one side: its samples, or why it is not a number."""

    name: str
    file: str  # the file (or glob) it comes from, relative to the compared folder
    samples: list[float] = field(default_factory=list)
    invalid: str | None = None  # e.g. "NaN", "string 'abc'"
    nonfinite: bool = False  # invalid because NaN or infinite: a number that went bad, not a wrong type
    raw: list[Any] = field(default_factory=list)  # every value as read: per-class lists are split from it
    nested: bool = False  # a list of lists of numbers: per-class values per seed, compared only when declared
    valid_samples: list[float] = field(default_factory=list)  # the numbers among the values of an invalid list

    def add(self, value: Any) -> None:
        self.raw.append(value)
        if self.invalid is not None:
            return
        if is_table(value):
            if self.samples:
                self.invalid, self.samples = "a mix of numbers and lists of lists", []
            self.nested = True
            return
        samples, invalid, nonfinite = to_samples(value)
        if invalid is not None:
            self.valid_samples = self.samples + [x for x in _numbers(value)]
            self.invalid, self.nonfinite, self.samples = invalid, nonfinite, []
        elif self.nested:
            self.invalid = "a mix of numbers and lists of lists"
        else:
            self.samples.extend(samples)


def is_table(value: Any) -> bool:
    """A non-empty list of non-empty lists of finite numbers: one row per seed, one column per class."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(row, list) and row and all(finite_number(x) for x in row) for row in value)
    )


def _numbers(value: Any) -> list[float]:
    items = value if isinstance(value, list) else [value]
    return [float(x) for x in items if finite_number(x)]


def finite_number(value: Any) -> bool:
    """A real number (not a boolean) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def to_samples(value: Any) -> tuple[list[float], str | None, bool]:
    """A metric value as samples, or why it is invalid (and whether it is a non-finite number)."""
    if isinstance(value, bool):
        return [], f"a boolean ({value}), not a number", False
    if isinstance(value, (int, float)):
        x = float(value)
        return ([x], None, False) if math.isfinite(x) else ([], repr(x) if x == x else "NaN", True)
    if isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return [], f"a string ({_describe(value)}), not a number", False
        return ([x], None, False) if math.isfinite(x) else ([], "NaN" if x != x else value.strip(), True)
    if value is None:
        return [], "null, not a number", False
    if isinstance(value, list):
        if not value:
            return [], "an empty list", False
        out: list[float] = []
        for item in value:
            if isinstance(item, (list, dict)):
                return [], f"a nested structure ({_describe(value)}), not a list of numbers", False
            samples, invalid, nonfinite = to_samples(item)
            if invalid is not None:
                return [], f"a list with {invalid}", nonfinite
            out.extend(samples)
        return out, None, False
    return [], f"a {type(value).__name__} ({_describe(value)}), not a number", False


def key_segment(key: Any) -> str:
    """One key of a nested table as a name segment: quoted (JSON-style) when it holds a dot or a quote."""
    text = str(key)
    return json.dumps(text, ensure_ascii=False) if "." in text or '"' in text else text


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested tables to dotted keys (a key holding a dot is quoted); lists and scalars are leaves."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            segment = key_segment(key)
            name = f"{prefix}.{segment}" if prefix else segment
            if isinstance(value, Mapping) and value:
                yield from flatten(value, name)
            else:
                yield name, value
    else:
        yield prefix, data


@dataclass(frozen=True)
class FileSpec:
    """A metrics source: a path or glob, and for CSV which columns and rows."""

    path: str
    columns: tuple[str, ...] = ()
    rows: str = "last"  # "last": the last row; "all": every row is one sample


def read_metrics(tree: Tree, spec: FileSpec, into: dict[str, Metric]) -> list[str]:
    """Add the metrics of one source to `into`; return the files read."""
    path = spec.path.rstrip("/")
    if not GLOB_CHARS.search(path) and tree.is_dir(path):
        # A dvclive output folder: its summary is metrics.json.
        path = f"{path}/metrics.json"
    files = tree.glob(path)
    for file in files:
        data = tree.read(file)
        if data is None:
            continue
        where = tree.where(file)
        if file.lower().endswith((".csv", ".tsv")):
            values: Iterable[tuple[str, Any]] = _table_values(data, file, where, spec)
        else:
            values = flatten(parse_document(data, file, where))
        for key, value in values:
            name = f"{path}:{key}" if key else path
            metric = into.get(name)
            if metric is None:
                metric = into[name] = Metric(name, path)
            metric.add(value)
    return files


def _table_values(data: bytes, file: str, where: str, spec: FileSpec) -> Iterator[tuple[str, Any]]:
    header, rows = parse_table(data, file, where)
    columns = list(spec.columns) or header
    for column in spec.columns:
        if column not in header:
            raise UserError(
                f"{where}: no column {column!r} (columns: {', '.join(header)}); fix 'columns' under "
                "[tool.ci-checks.compare] files"
            )
    if not rows:
        return
    chosen = rows if spec.rows == "all" else rows[-1:]
    for column in columns:
        cells = [row[column] for row in chosen]
        if not spec.columns and not all(_is_number(c) for c in cells):
            continue  # unnamed text columns (a model name, a date) are labels, not metrics
        yield column, cells if spec.rows == "all" else cells[0]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- dvc.yaml


@dataclass
class CurveSpec:
    path: str
    x: str | None = None
    y: tuple[str, ...] = ()


@dataclass
class DvcOutputs:
    metrics: dict[str, bool] = field(default_factory=dict)  # path -> cached by DVC (not in git)
    plots: list[CurveSpec] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    templated: bool = False


def read_dvc_yaml(tree: Tree, path: str = "dvc.yaml") -> DvcOutputs | None:
    """The metrics, plots and params files a dvc.yaml names; None when there is no dvc.yaml."""
    data = tree.read(path)
    if data is None:
        return None
    doc = parse_document(data, path, tree.where(path)) or {}
    if not isinstance(doc, Mapping):
        raise UserError(f"{tree.where(path)}: expected a mapping at the top level; fix dvc.yaml")
    found = DvcOutputs()
    stages = doc.get("stages") or {}
    for stage in (stages.values() if isinstance(stages, Mapping) else []):
        if not isinstance(stage, Mapping):
            continue
        if "foreach" in stage or "matrix" in stage:
            found.templated = True
            continue
        for entry in stage.get("metrics") or []:
            name, opts = _entry(entry)
            if name:
                found.metrics[name] = bool(opts.get("cache", True))
        for entry in stage.get("plots") or []:
            name, opts = _entry(entry)
            if name:
                found.plots.append(_curve(name, opts.get("x"), opts.get("y")))
        for entry in stage.get("params") or []:
            if isinstance(entry, Mapping):
                found.params.extend(str(k) for k in entry)
    for entry in doc.get("metrics") or []:
        name, _ = _entry(entry)
        if name:
            found.metrics.setdefault(name, False)
    _top_level_plots(doc.get("plots") or [], found)
    found.templated = found.templated or any("${" in p for p in list(found.metrics) + [c.path for c in found.plots])
    found.metrics = {p: cached for p, cached in found.metrics.items() if "${" not in p}
    found.plots = [c for c in found.plots if "${" not in c.path and c.path.lower().endswith(CURVE_SUFFIXES)]
    return found


def _entry(entry: Any) -> tuple[str | None, Mapping[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, Mapping) and len(entry) == 1:
        name, opts = next(iter(entry.items()))
        return str(name), opts if isinstance(opts, Mapping) else {}
    return None, {}


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _curve(path: str, x: Any, y: Any) -> CurveSpec:
    return CurveSpec(path, str(x) if isinstance(x, str) else None, _names(y))


def _top_level_plots(entries: Any, found: DvcOutputs) -> None:
    """Top-level `plots:`: paths, {path: {x, y}}, or {name: {x: ..., y: {file: cols}}}."""
    for entry in entries if isinstance(entries, list) else []:
        name, opts = _entry(entry)
        if name is None:
            continue
        y = opts.get("y")
        if isinstance(y, Mapping):  # a named plot over one or more files
            x = opts.get("x")
            for file, cols in y.items():
                xcol = x.get(file) if isinstance(x, Mapping) else x
                found.plots.append(_curve(str(file), xcol, cols))
        else:
            found.plots.append(_curve(name, opts.get("x"), y))


# ---------------------------------------------------------------- curves


def read_curve(tree: Tree, spec: CurveSpec) -> Curve | None:
    """A curve file as its x name and numeric columns; None when the file is not on this side."""
    data = tree.read(spec.path)
    if data is None:
        return None
    where = tree.where(spec.path)
    if spec.path.lower().endswith(".json"):
        doc = parse_document(data, spec.path, where)
        if isinstance(doc, Mapping) and len(doc) == 1 and isinstance(next(iter(doc.values())), list):
            doc = next(iter(doc.values()))  # DVC also reads {"train": [{...}, ...]}
        if not isinstance(doc, list) or not all(isinstance(r, Mapping) for r in doc):
            raise UserError(f'{where}: a JSON plot must be a list of records like [{{"step": 0, "loss": 1.2}}]')
        header = list(dict.fromkeys(k for r in doc for k in r))
        rows = [{k: r.get(k) for k in header} for r in doc]
    else:
        header, table = parse_table(data, spec.path, where)
        rows = [dict(r) for r in table]
    x = spec.x or next((c for c in ("step", "epoch", "iteration") if c in header), None)
    columns = {c: [_as_float(r[c]) for r in rows] for c in header}
    if x is None or x not in columns:
        x = x or "step"
        columns[x] = [float(i) for i in range(len(rows))]
    ys = (
        [c for c in spec.y if c in columns]
        if spec.y
        else ([header[-1]] if header and header[-1] != x else [c for c in header if c != x][-1:])
    )
    return x, {c: columns[c] for c in [x, *ys]}


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------- params


def read_params(tree: Tree, files: Iterable[str]) -> dict[str, Any]:
    """Every param of the given files flattened to `key.sub` (prefixed `file:` for files other than params.yaml)."""
    params: dict[str, Any] = {}
    for file in files:
        data = tree.read(file)
        if data is None:
            continue
        doc = parse_document(data, file, tree.where(file))
        prefix = "" if file == "params.yaml" else f"{file}:"
        for key, value in flatten(doc if isinstance(doc, Mapping) else {}):
            params[prefix + key] = value
    return params


# ---------------------------------------------------------------- per-class values


def per_class(metric: Metric) -> dict[str, Metric] | None:
    """A metric holding one value per class split into one metric per class (``name[0]``, ``name[1]`` ...).

    A list of numbers is one run's value per class; a list of lists is one row per seed. None when there is
    nothing to split (a single number, or a value that is not a number at all).
    """
    if metric.invalid is not None:
        return None
    rows: list[list[float]] = []
    for value in metric.raw:
        if is_table(value):
            rows.extend([float(x) for x in row] for row in value)
        elif isinstance(value, list) and value and all(finite_number(x) for x in value):
            rows.append([float(x) for x in value])
        else:
            return None
    if not rows:
        return None
    width = max(len(r) for r in rows)
    out: dict[str, Metric] = {}
    for i in range(width):
        name = f"{metric.name}[{i}]"
        child = Metric(name, metric.file)
        column = [r[i] for r in rows if i < len(r)]
        if len(column) < len(rows):
            child.invalid = f"a per-class value missing from {len(rows) - len(column)} of {len(rows)} rows"
        else:
            child.samples = column
        out[name] = child
    return out
