"""One streaming pass over each dataset: its expectations checked, its statistics gathered, its rows' identities
kept for the leakage check between splits."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ci_checks._errors import UserError
from ci_checks.data import expect, read, samples
from ci_checks.data.config import Dataset
from ci_checks.data.expect import Failures
from ci_checks.data.stats import Accumulator, row_hashes


@dataclass
class Scanned:
    """One dataset (or one split of a spec) after its pass."""

    ds: Dataset
    failures: Failures
    rows: int = 0
    snapshot: dict[str, Any] | None = None
    identity: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))  # content, for leakage
    keys: np.ndarray | None = None  # key hashes, for leakage
    unit: str = "row"
    seconds: float = 0.0


class Progress:
    """Progress of long passes on stderr: a line every few chunks in CI logs, one rewritten line on a terminal."""

    def __init__(self, label: str, *, quiet: bool, every_s: float = 5.0) -> None:
        from ci_checks.render import plain

        # Dataset names come from the pull request's config: one line, never a workflow command.
        self.label, self.quiet, self.every_s = plain(label), quiet, every_s
        self.start = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, unit: str = "rows") -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else self.every_s):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        text = f"{self.label}: {done:,} {unit} ({rate:,.0f}/s)"
        if self.tty:
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self, total: int, unit: str = "rows") -> None:
        if self.quiet:
            return
        seconds = time.monotonic() - self.start
        end = "\r" if self.tty else ""
        print(f"{end}{self.label}: {total:,} {unit} in {seconds:.1f}s", file=sys.stderr, flush=True)


def scan(
    ds: Dataset,
    settings: dict[str, Any],
    *,
    where: str,
    stats: bool,
    quiet: bool,
    checks: bool = True,
    path: str | None = None,
    subject: dict[str, Any] | None = None,
) -> list[Scanned]:
    """Check (checks=True) and summarize (stats=True) one dataset; path reads another copy of its file (the base's)."""
    if ds.spec:
        return _scan_spec(ds, settings, where=where, stats=stats, quiet=quiet, path=path, subject=subject or {})
    return [
        _scan_table(
            ds, settings, where=where, stats=stats, checks=checks, quiet=quiet, path=path, subject=subject or {}
        )
    ]


def _scan_table(
    ds: Dataset,
    settings: dict[str, Any],
    *,
    where: str,
    stats: bool,
    checks: bool,
    quiet: bool,
    path: str | None,
    subject: dict[str, Any],
) -> Scanned:
    started = time.monotonic()
    file = path or ds.path
    assert file is not None
    fmt = read.file_format(ds.relpath or file, ds.get("format"))
    schema, unique = expect.unique_columns(ds, expect.load_schema(ds, where)) if checks else (None, [])
    failures = Failures("row")
    state = expect.Pass()
    acc = (
        Accumulator(label=ds.get("label"), sample_size=int(settings.get("sample-size") or 20_000), skip=tuple(ds.key))
        if stats
        else None
    )
    progress = Progress(f"ci-checks data: {ds.name}", quiet=quiet)
    for frame in read.chunks(
        file, fmt, chunk_rows=int(settings.get("chunk-rows") or 250_000), max_rows=ds.get("max-rows", 0)
    ):
        hashes = row_hashes(frame)
        if checks:
            expect.check_chunk(ds, schema, frame, hashes, state, failures, where, unique_columns=unique)
        else:
            state.rows += len(frame)
        if acc is not None:
            acc.update(frame, hashes)
        progress(state.rows)
    if schema is not None and ds.get("backend", "pandas") == "polars":
        _validate_polars(ds, schema, file, fmt, failures, where)
    if checks:
        expect.finish(ds, state, failures)
    progress.done(state.rows)
    out = Scanned(ds, failures, rows=state.rows, unit="row", seconds=time.monotonic() - started)
    if state.identity:
        out.identity = np.concatenate(state.identity)
    if state.keys:
        out.keys = np.concatenate(state.keys)
    if acc is not None:
        out.snapshot = acc.snapshot(ds.name, kind="tabular", path=ds.relpath, format=fmt, **subject)
    return out


def _validate_polars(ds: Dataset, schema: Any, file: str, fmt: str, failures: Failures, where: str) -> None:
    """pandera's Polars backend on a lazy scan of the file: polars reads it column by column, in parallel."""
    import polars as pl
    from pandera.config import ValidationDepth, config_context
    from pandera.errors import SchemaErrors

    scanners: dict[str, Callable[[str], Any]] = {
        "csv": pl.scan_csv,
        "parquet": pl.scan_parquet,
        "jsonl": pl.scan_ndjson,
    }
    if fmt not in scanners:
        raise UserError(f'{where} {ds.where}: backend = "polars" reads csv, parquet or jsonl, not {fmt}')
    frame = scanners[fmt](file)
    if ds.get("max-rows", 0):
        frame = frame.head(int(ds.get("max-rows")))
    # A LazyFrame is otherwise checked for its schema only; the data checks run on polars' streaming engine.
    with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            schema.validate(frame, lazy=True)
        except SchemaErrors as e:
            cases = e.failure_cases
            expect.record_cases(ds, cases.to_pandas() if hasattr(cases, "to_pandas") else cases, failures, where)


def _scan_spec(
    ds: Dataset,
    settings: dict[str, Any],
    *,
    where: str,
    stats: bool,
    quiet: bool,
    path: str | None,
    subject: dict[str, Any],
) -> list[Scanned]:
    out = []
    for split, data in samples.load_splits(ds, where, path).items():
        started = time.monotonic()
        part = replace(ds, name=f"{ds.name}/{split}" if split else ds.name, settings=dict(ds.settings))
        if split and part.get("split") is None:
            part.settings["split"] = split
        failures = Failures("sample")
        acc = Accumulator(label="label", sample_size=int(settings.get("sample-size") or 20_000)) if stats else None
        progress = Progress(f"ci-checks data: {part.name}", quiet=quiet)
        state = samples.scan(
            part,
            data,
            failures,
            on_chunk=acc.update if acc is not None else None,
            limit=int(part.get("max-rows", 0)),
            progress=lambda n: progress(n, "samples"),
        )
        progress.done(state.count, "samples")
        exact = np.asarray(state.exact, dtype=np.uint64)
        duplicates = part.get("duplicates", "error")
        if duplicates != "off":
            expect._repeats(exact, lambda: failures.get("no duplicate samples", duplicates), "repeats sample")
        near_level = part.get("near-duplicates", "warning")
        if near_level != "off" and state.near:
            indexed = np.asarray(state.near_index)
            _, first = np.unique(exact[indexed], return_index=True)
            keep = indexed[np.sort(first)]  # exact repeats are reported above, not again as near ones
            near_of = dict(zip(state.near_index, state.near))
            expect._repeats(
                np.asarray([near_of[int(i)] for i in keep], dtype=np.uint64),
                lambda: failures.get("no near-duplicate samples", near_level),
                "is alike sample",
            )
            near = failures.by_name.get("no near-duplicate samples")
            if near is not None:  # positions among the kept samples -> sample indices
                near.rows = [int(keep[r]) for r in near.rows]
                near.values = [f"is alike sample {int(keep[int(v.rsplit(' ', 1)[1])])}" for v in near.values]
        scanned = Scanned(part, failures, rows=state.count, unit="sample", seconds=time.monotonic() - started)
        if part.get("split") is not None and part.get("leakage", "error") != "off":
            scanned.identity = exact
        if acc is not None:
            acc.extra = {"shapes": state.shapes, "dtypes": state.dtypes}
            scanned.snapshot = acc.snapshot(part.name, kind="samples", spec=ds.spec, path=ds.relpath, **subject)
        out.append(scanned)
    return out


def check_leakage(scanned: Sequence[Scanned]) -> None:
    """Rows or samples one split shares with another, added to the later dataset's failures."""
    by_name = {s.ds.name: s for s in scanned}
    splits = [
        expect.Identities(s.ds, s.identity, s.keys, s.unit)
        for s in scanned
        if s.ds.get("split") is not None and len(s.identity)
    ]
    expect.leakage(splits, lambda name: by_name[name].failures)
