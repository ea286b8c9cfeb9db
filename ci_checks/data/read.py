"""Read tabular files chunk by chunk (CSV, TSV, Parquet, JSON lines) as pandas DataFrames, with bounded memory.

Each chunk keeps the row numbers of the file (0-based, header not counted) as its index, so a failure names rows
of the file, not of the chunk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ci_checks._errors import UserError

FORMATS = ("csv", "tsv", "parquet", "jsonl")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def file_format(path: str, declared: str | None = None) -> str:
    """The declared format, else the one the file's extension says (compressed .gz/.bz2/.zst/.xz files too)."""
    if declared:
        return declared
    stem = path
    for suffix in (".gz", ".bz2", ".zst", ".xz", ".zip"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    ext = os.path.splitext(stem)[1].lower()
    if ext not in _EXTENSIONS:
        raise UserError(
            f"{path}: cannot tell the data format from the extension {ext or '(none)'}; set format = "
            f'"csv", "tsv", "parquet" or "jsonl" for this dataset under [tool.ci-checks.data.datasets]'
        )
    return _EXTENSIONS[ext]


def chunks(path: str, fmt: str, *, chunk_rows: int, max_rows: int = 0) -> Iterator[Any]:
    """The file's rows as DataFrames of at most chunk_rows rows; at most max_rows rows in all (0: every row)."""
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, not a data file; point path at a file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: data file not found; fix path under [tool.ci-checks.data.datasets] (or dvc pull)")
    seen = 0
    try:
        for frame in _raw_chunks(path, fmt, chunk_rows):
            if max_rows and seen + len(frame) > max_rows:
                frame = frame.iloc[: max_rows - seen]
            if len(frame) == 0 and seen:
                break
            frame.index = range(seen, seen + len(frame))
            seen += len(frame)
            yield frame
            if max_rows and seen >= max_rows:
                break
    except UserError:
        raise
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise UserError(
            f"{path}: cannot read it as {fmt} ({type(e).__name__}: {_first(e)}); fix the file or format"
        ) from None
    except Exception as e:  # noqa: BLE001 - pyarrow and pandas parser errors have no common base
        if type(e).__module__.startswith(("pyarrow", "pandas")):
            raise UserError(
                f"{path}: cannot read it as {fmt} ({type(e).__name__}: {_first(e)}); fix the file"
            ) from None
        raise


def _first(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def _raw_chunks(path: str, fmt: str, chunk_rows: int) -> Iterator[Any]:
    import pandas as pd

    if fmt in ("csv", "tsv"):
        with pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", chunksize=chunk_rows, low_memory=False) as reader:
            yield from reader
    elif fmt == "jsonl":
        with pd.read_json(path, lines=True, chunksize=chunk_rows) as reader:
            yield from reader
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        empty = True
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            empty = False
            yield batch.to_pandas()
        if empty:
            yield parquet.schema_arrow.empty_table().to_pandas()
    else:  # pragma: no cover - the config schema allows only FORMATS
        raise UserError(f"{path}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
