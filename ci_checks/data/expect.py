"""Expectations of tabular data: a pandera schema run chunk by chunk, plus what needs the whole file at once
(unique keys and columns, duplicate rows, labels and their balance, rows shared between splits).

pandera does the checking of each chunk; this module only carries what crosses chunks: the 64-bit hashes of rows
and keys (8 bytes a row), the label counts, and the first failing rows of each expectation.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ci_checks._errors import UserError
from ci_checks.data.config import Dataset

SHOWN = 5  # failing rows or samples named per expectation


@dataclass
class Failure:
    """One expectation that did not hold: how many rows or samples, and the first of them."""

    expectation: str
    count: int = 0
    rows: list[int] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    severity: str = "error"
    unit: str = "row"

    def add(self, row: int | None, value: Any) -> None:
        self.count += 1
        if len(self.rows) < SHOWN and row is not None:
            self.rows.append(int(row))
            self.values.append(_short(value))

    def message(self, dataset: str) -> str:
        first = ""
        if self.rows:
            pairs = ", ".join(f"{r} ({v})" if v else str(r) for r, v in zip(self.rows, self.values))
            first = f"; first {self.unit}s: {pairs}"
        elif self.values:
            first = f": {', '.join(self.values)}"
        return f"{dataset}: {self.expectation} failed for {self.count} {self.unit}(s){first}"


def _short(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Failures:
    """The failures of one dataset by expectation, in the order they were first seen."""

    def __init__(self, unit: str = "row") -> None:
        self.unit = unit
        self.by_name: dict[str, Failure] = {}

    def get(self, expectation: str, severity: str = "error") -> Failure:
        if expectation not in self.by_name:
            self.by_name[expectation] = Failure(expectation, severity=severity, unit=self.unit)
        return self.by_name[expectation]

    def __iter__(self) -> Iterator[Failure]:
        return iter(self.by_name.values())


# ---------------------------------------------------------------- the pandera schema


def load_schema(ds: Dataset, where: str) -> Any:
    """The dataset's pandera schema: its schema = "FILE.py:NAME", plus its inline columns; None when it has neither."""
    polars = ds.get("backend", "pandas") == "polars"
    schema = _referenced(ds, where) if ds.get("schema") else None
    inline = ds.settings.get("columns") or {}
    if inline:
        columns = {name: _column(ds, name, spec, where, polars) for name, spec in inline.items()}
        if schema is None:
            pa = _pandera(polars)
            schema = pa.DataFrameSchema(columns, strict=bool(ds.get("strict", False)))
        else:
            schema = schema.add_columns(columns)
    if schema is not None and ds.settings.get("strict") is not None:
        import copy

        schema = copy.deepcopy(schema)  # the user's module keeps its own object as it was
        schema.strict = bool(ds.settings["strict"])
    return schema


def _pandera(polars: bool) -> types.ModuleType:
    import importlib

    try:
        return importlib.import_module("pandera.polars" if polars else "pandera.pandas")
    except ImportError as e:
        raise UserError(f"data checks need pandera ({e}); install them: pip install 'ci-checks[data]'") from None


def _referenced(ds: Dataset, where: str) -> Any:
    from ci_checks.engine.usercode import UserCodeError, call_user
    from ci_checks.spec import _import_file, _split_ref

    ref = str(ds.get("schema"))
    target, name, is_file = _split_ref(ref)
    path = os.path.join(ds.root, target) if is_file else target
    if is_file and not os.path.isfile(path):
        raise UserError(f"{where} {ds.where}: schema file {target} not found (paths are relative to {ds.root})")
    try:
        if is_file:
            module = call_user("importing the schema", _import_file, path)
        else:
            import importlib

            module = call_user("importing the schema", importlib.import_module, target)
    except UserCodeError as e:
        raise UserError(f"{where} {ds.where}: schema {ref}: {e}") from None
    if not hasattr(module, name):
        raise UserError(f"{where} {ds.where}: {target} defines no {name!r}; name a pandera schema in it")
    value = getattr(module, name)
    if isinstance(value, type) and hasattr(value, "to_schema"):  # a DataFrameModel class
        try:
            value = call_user("building the schema", value.to_schema)
        except UserCodeError as e:
            raise UserError(f"{where} {ds.where}: schema {ref}: {e}") from None
    if not hasattr(value, "validate") or not hasattr(value, "columns"):
        raise UserError(
            f"{where} {ds.where}: schema {ref} is a {type(value).__name__}, not a pandera DataFrameSchema or "
            "DataFrameModel"
        )
    return value


def _column(ds: Dataset, name: str, spec: dict[str, Any], where: str, polars: bool) -> Any:
    pa = _pandera(polars)
    checks = []
    if spec.get("min") is not None:
        checks.append(pa.Check.ge(spec["min"]))
    if spec.get("max") is not None:
        checks.append(pa.Check.le(spec["max"]))
    if spec.get("isin") is not None:
        checks.append(pa.Check.isin(list(spec["isin"])))
    if spec.get("matches") is not None:
        checks.append(pa.Check.str_matches(str(spec["matches"])))
    try:
        return pa.Column(
            spec.get("dtype"),
            checks=checks,
            nullable=bool(spec.get("nullable", False)),
            unique=bool(spec.get("unique", False)),
            regex=bool(spec.get("regex", False)),
            required=bool(spec.get("required", True)),
            name=name,
        )
    except (TypeError, ValueError) as e:
        raise UserError(f"{where} {ds.where}: column {name!r}: {e}") from None


# ---------------------------------------------------------------- one pass over a tabular dataset


@dataclass
class Pass:
    """What one pass over a dataset leaves for the checks that need the whole file."""

    rows: int = 0
    row_hashes: list[np.ndarray] = field(default_factory=list)
    identity: list[np.ndarray] = field(default_factory=list)  # content hashes without the key, for leakage
    keys: list[np.ndarray] = field(default_factory=list)  # key hashes, for leakage
    unique: dict[str, list[np.ndarray]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    label_rows: dict[str, int] = field(default_factory=dict)  # the first row of each label


def check_chunk(
    ds: Dataset,
    schema: Any,
    frame: Any,
    hashes: np.ndarray,
    state: Pass,
    failures: Failures,
    where: str,
    *,
    unique_columns: list[str],
) -> None:
    """Validate one chunk with pandera and record what the whole-file checks need."""
    import pandas as pd

    if state.rows == 0:
        _columns_exist(ds, frame, where)
    if schema is not None and ds.get("backend", "pandas") == "pandas":
        _validate(ds, schema, frame, failures, where)
    state.rows += len(frame)
    if ds.get("duplicates", "error") != "off":
        state.row_hashes.append(hashes)
    for name in unique_columns:
        if name in frame.columns:
            column_hashes = pd.util.hash_pandas_object(frame[name], index=False).to_numpy()
            state.unique.setdefault(name, []).append(np.asarray(column_hashes, dtype=np.uint64))
    if ds.get("split") is not None and ds.get("leakage", "error") != "off":
        keys = ds.key
        if keys:
            state.keys.append(_hash(frame[keys]))
            # A row copied to another split under a new id is leaked as well: the content is compared without keys.
            state.identity.append(_hash(frame.drop(columns=keys)))
        else:
            state.identity.append(hashes)
    label = ds.get("label")
    if label is not None:
        counts = frame[label].dropna().astype(str).value_counts(sort=False)
        for value, n in counts.items():
            key = str(value)
            if key not in state.labels:
                state.label_rows[key] = int(frame.index[frame[label].astype(str) == key][0])
            state.labels[key] = state.labels.get(key, 0) + int(n)


def _hash(frame: Any) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.util.hash_pandas_object(frame, index=False).to_numpy(), dtype=np.uint64)


def _columns_exist(ds: Dataset, frame: Any, where: str) -> None:
    present = [str(c) for c in frame.columns]
    for what, names in (("label", [ds.get("label")] if ds.get("label") else []), ("key", ds.key)):
        for name in names:
            if name not in present:
                raise UserError(
                    f"{ds.path}: {what} column {name!r} of {ds.where} is not in the file (columns: "
                    f"{', '.join(present[:12])}{'...' if len(present) > 12 else ''}); fix {what} in {where}"
                )


def _validate(ds: Dataset, schema: Any, frame: Any, failures: Failures, where: str) -> None:
    from pandera.errors import SchemaError, SchemaErrors

    try:
        # In place: the chunk is ours, and pandera's defensive copy of it costs a third of the validation.
        schema.validate(frame, lazy=True, inplace=True)
        return
    except SchemaErrors as e:
        cases = e.failure_cases
    except SchemaError as e:  # pragma: no cover - lazy=True collects them all; a schema-wide error comes alone
        failures.get(f"schema: {e}").add(None, None)
        return
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise UserError(f"{where} {ds.where}: the pandera schema cannot run ({type(e).__name__}: {e})") from None
    record_cases(ds, cases, failures, where)


def record_cases(ds: Dataset, cases: Any, failures: Failures, where: str) -> None:
    """pandera's failure cases (a pandas DataFrame), by expectation: a column's check, or a check of whole rows."""
    rows_of: dict[str, dict[int, list[str]]] = {}  # dataframe-wide checks: pandera lists each column of a row
    for row in cases.itertuples(index=False):
        check = str(getattr(row, "check", ""))
        column = getattr(row, "column", None)
        value = getattr(row, "failure_case", None)
        if check == "column_in_dataframe":
            raise UserError(
                f"{ds.path}: column {value!r} that the schema of {ds.where} requires is not in the file; fix the "
                f"schema in {where} or the data"
            )
        raw = getattr(row, "index", None)
        index: int | None = None if raw is None or (isinstance(raw, float) and np.isnan(raw)) else int(raw)
        whole = str(getattr(row, "schema_context", "")) == "DataFrameSchema"  # a check of rows, or of the columns
        if whole and index is not None:
            rows_of.setdefault(check, {}).setdefault(index, []).append(f"{column}={_short(value)}")
            continue
        name = check if whole or column is None or str(column) == "None" else f"column {column!r}: {check}"
        target = failures.get(name)
        if index is None:
            target.count += 1  # a schema-level failure (a dtype, a column too many): no row to name
            if len(target.values) < SHOWN:
                target.values.append(_short(value))
        else:
            target.add(index, value)
    for check, rows in rows_of.items():
        target = failures.get(check)
        for index in sorted(rows):
            target.add(index, ", ".join(rows[index][:3]))


def unique_columns(ds: Dataset, schema: Any) -> tuple[Any, list[str]]:
    """The schema without its per-column unique checks, and those columns: they are checked over the whole file,
    not chunk by chunk."""
    names = list(ds.key)
    if schema is None or ds.get("backend", "pandas") != "pandas":
        return schema, names
    for name, column in list(getattr(schema, "columns", {}).items()):
        if getattr(column, "unique", False) and not getattr(column, "regex", False):
            schema = schema.update_column(name, unique=False)
            names.append(str(name))
    return schema, list(dict.fromkeys(names))


def finish(ds: Dataset, state: Pass, failures: Failures) -> None:
    """The whole-file checks: duplicates, unique columns and keys, label values and shares."""
    duplicates = ds.get("duplicates", "error")
    if duplicates != "off" and state.row_hashes:
        _repeats(np.concatenate(state.row_hashes), lambda: failures.get("no duplicate rows", duplicates), "repeats row")
    for name, parts in state.unique.items():
        _repeats(np.concatenate(parts), lambda: failures.get(f"column {name!r}: unique"), "repeats the value of row")
    label = ds.get("label")
    if label is not None:
        label_checks(ds, state.labels, state.label_rows, state.rows, failures, f"label {label!r}")


def label_checks(
    ds: Dataset,
    counts: dict[str, int],
    first_rows: dict[str, int],
    total: int,
    failures: Failures,
    what: str,
) -> None:
    """Labels outside the declared classes, declared classes absent, and class shares out of bounds."""
    classes = ds.get("classes")
    if classes is not None:
        allowed = {str(c) for c in classes}
        for value, n in sorted(counts.items()):
            if value not in allowed:
                f = failures.get(f"{what}: in classes {sorted(allowed)}")
                f.count += n - 1
                f.add(first_rows.get(value), value)
        absent = sorted(allowed - set(counts))
        if absent:
            f = failures.get(f"{what}: every class present")
            f.count = len(absent)
            f.values = [f"class {c} absent" for c in absent[:SHOWN]]
            f.unit = "class"
    low, high = ds.get("min-class-share"), ds.get("max-class-share")
    if total and (low is not None or high is not None):
        for value, n in sorted(counts.items()):
            share = n / total
            if (low is not None and share < low) or (high is not None and share > high):
                bounds = f"[{low if low is not None else 0:g}, {high if high is not None else 1:g}]"
                f = failures.get(f"{what}: class share within {bounds}")
                f.unit = "class"
                f.count += 1
                if len(f.values) < SHOWN:
                    f.values.append(f"class {value}: {share:.3f}")


def _repeats(hashes: np.ndarray, failure_of: Callable[[], Failure], verb: str) -> None:
    """Rows whose hash an earlier row has: counted, and the first named with the row they repeat."""
    if len(hashes) < 2:
        return
    ordered = np.sort(hashes)
    if not (ordered[1:] == ordered[:-1]).any():  # the common case, which a plain sort (no argsort) tells
        return
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    if not len(same):
        return
    # The first row of each run of equal hashes is the original; the others repeat it.
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    first_of_run = starts[np.searchsorted(starts, same, side="right") - 1]
    pairs = sorted(zip(order[same].tolist(), order[first_of_run].tolist()))
    failure = failure_of()
    failure.count += len(pairs)
    for row, original in pairs[:SHOWN]:
        failure.rows.append(int(row))
        failure.values.append(f"{verb} {original}")


@dataclass
class Identities:
    """What identifies the rows (or samples) of one split: content hashes, and key hashes when it has a key."""

    ds: Dataset
    content: np.ndarray
    keys: np.ndarray | None
    unit: str


def leakage(splits: list[Identities], failures_of: Callable[[str], Failures]) -> None:
    """Rows (or samples) of one split that another split also holds: by content, and by key when both have it."""
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            if a.ds.get("split") == b.ds.get("split"):
                continue
            shared = np.isin(b.content, a.content)
            by = ["content"]
            if a.keys is not None and b.keys is not None and a.ds.key == b.ds.key:
                shared |= np.isin(b.keys, a.keys)
                by.insert(0, f"key {', '.join(b.ds.key)}")
            n = int(shared.sum())
            if not n:
                continue
            f = failures_of(b.ds.name).get(
                f"no {b.unit}s shared with split {a.ds.get('split')!r} ({a.ds.name}, by {' or '.join(by)})",
                b.ds.get("leakage", "error"),
            )
            f.unit = b.unit
            f.count += n
            for row in np.flatnonzero(shared)[:SHOWN].tolist():
                f.rows.append(int(row))
                f.values.append("")
