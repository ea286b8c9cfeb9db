"""Dataset statistics computed chunk by chunk with bounded memory: the JSON snapshot data-stats writes.

Per column: the count and null rate; for numbers the moments, min, max and 101 quantiles of a sample; for
categories the frequencies of the most common values. The sample is the rows whose content hash is smallest, so it
does not depend on the order of the rows: a shuffled copy of a dataset has the very same snapshot.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SNAPSHOT_SCHEMA = "ci-checks/data-stats"
SNAPSHOT_VERSION = 1
QUANTILES = 101
TOP_CATEGORIES = 50  # categories kept in a snapshot (the rest are counted as "other")
MAX_TRACKED = 5_000  # distinct values counted per column while reading; more make it high-cardinality


class _Numeric:
    def __init__(self) -> None:
        self.count = 0  # non-null values
        self.nulls = 0
        self.infinite = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def update(self, values: np.ndarray) -> None:
        nulls = np.isnan(values)
        finite = np.isfinite(values)
        self.nulls += int(nulls.sum())
        self.infinite += int((~finite & ~nulls).sum())
        v = values[finite]
        if not len(v):
            return
        n, mean = len(v), float(v.mean())
        m2 = float(((v - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min, self.max = min(self.min, float(v.min())), max(self.max, float(v.max()))


class _Categorical:
    def __init__(self) -> None:
        self.count = 0
        self.nulls = 0
        self.counts: dict[str, int] = {}
        self.other = 0  # values past MAX_TRACKED distinct ones

    def update(self, values: Any) -> None:
        nulls = values.isna()
        self.nulls += int(nulls.sum())
        present = values[~nulls]
        self.count += len(present)
        for value, n in present.astype(str).value_counts(sort=False).items():
            key = str(value)
            if key in self.counts or len(self.counts) < MAX_TRACKED:
                self.counts[key] = self.counts.get(key, 0) + int(n)
            else:
                self.other += int(n)


class Accumulator:
    """Statistics of one dataset, fed chunk by chunk (pandas DataFrames with a 64-bit content hash per row)."""

    def __init__(
        self,
        *,
        label: str | None = None,
        sample_size: int = 20_000,
        categorical: tuple[str, ...] = (),
        skip: tuple[str, ...] = (),
    ) -> None:
        self.label = label
        self.skip = set(skip)  # keys: identities, not features (new rows bring new ids)
        self.sample_size = sample_size
        self.categorical = set(categorical) | ({label} if label else set())
        self.rows = 0
        self.columns: dict[str, _Numeric | _Categorical] = {}
        self.kinds: dict[str, str] = {}
        self._sample_hash = np.empty(0, dtype=np.uint64)
        self._sample: dict[str, np.ndarray] = {}
        self.extra: dict[str, Any] = {}  # what the sample datasets add (shapes, image sizes)

    def update(self, frame: Any, hashes: np.ndarray) -> None:
        """Add a chunk; hashes[i] is the content hash of its row i."""
        self.rows += len(frame)
        numeric: dict[str, np.ndarray] = {}
        for name in frame.columns:
            column = frame[name]
            key = str(name)
            if key in self.skip:
                continue
            kind = self.kinds.get(key) or self._kind(key, column)
            self.kinds[key] = kind
            if kind == "numeric":
                values = _as_float(column)
                if values is None:  # a later chunk holds text in a numeric column: count it as categorical from now
                    continue
                acc = self.columns.setdefault(key, _Numeric())
                assert isinstance(acc, _Numeric)
                acc.update(values)
                numeric[key] = values
            elif kind == "categorical":
                cat = self.columns.setdefault(key, _Categorical())
                assert isinstance(cat, _Categorical)
                cat.update(column)
        self._keep_sample(np.asarray(hashes, dtype=np.uint64), numeric)

    def _kind(self, name: str, column: Any) -> str:
        import pandas as pd

        if name in self.categorical:
            return "categorical"
        dtype = column.dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "categorical"
        if pd.api.types.is_numeric_dtype(dtype):
            return "numeric"
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            return "skipped"
        return "categorical"

    def _keep_sample(self, hashes: np.ndarray, numeric: dict[str, np.ndarray]) -> None:
        """Keep the sample_size rows with the smallest hashes seen so far (a sample independent of row order)."""
        if not numeric:
            return
        merged_hash = np.concatenate([self._sample_hash, hashes])
        merged = {}
        for key, values in numeric.items():
            old = self._sample.get(key)
            if old is None or len(old) != len(self._sample_hash):
                old = np.full(len(self._sample_hash), np.nan)
            merged[key] = np.concatenate([old, values])
        for key, old in self._sample.items():
            if key not in merged:
                merged[key] = np.concatenate([old, np.full(len(hashes), np.nan)])
        if len(merged_hash) > self.sample_size:
            keep = np.argpartition(merged_hash, self.sample_size - 1)[: self.sample_size]
            merged_hash = merged_hash[keep]
            merged = {k: v[keep] for k, v in merged.items()}
        self._sample_hash, self._sample = merged_hash, merged

    def snapshot(self, name: str, **subject: Any) -> dict[str, Any]:
        """The JSON snapshot of what was fed."""
        columns: dict[str, Any] = {}
        for key, acc in self.columns.items():
            if isinstance(acc, _Numeric):
                columns[key] = self._numeric(key, acc)
            else:
                columns[key] = _categorical(acc)
        for key, kind in self.kinds.items():
            if kind == "skipped":
                columns[key] = {"type": "skipped", "why": "dates and durations are not summarized"}
        out: dict[str, Any] = {
            "schema": SNAPSHOT_SCHEMA,
            "version": SNAPSHOT_VERSION,
            "dataset": name,
            "rows": self.rows,
            "columns": columns,
            **subject,
        }
        if self.label and isinstance(self.columns.get(self.label), _Categorical):
            out["label"] = self.label
            out["classes"] = columns[self.label]["top"]
        if self.extra:
            out["extra"] = self.extra
        return out

    def _numeric(self, key: str, acc: _Numeric) -> dict[str, Any]:
        sample = self._sample.get(key, np.empty(0))
        sample = sample[np.isfinite(sample)]
        total = acc.count + acc.nulls + acc.infinite
        out: dict[str, Any] = {
            "type": "numeric",
            "count": total,
            "nulls": acc.nulls,
            "null_rate": acc.nulls / total if total else 0.0,
            "infinite": acc.infinite,
        }
        if acc.count:
            out.update(
                mean=acc.mean,
                std=math.sqrt(acc.m2 / (acc.count - 1)) if acc.count > 1 else 0.0,
                min=acc.min,
                max=acc.max,
            )
        if len(sample):
            out["quantiles"] = [float(v) for v in np.quantile(sample, np.linspace(0, 1, QUANTILES))]
            out["sample"] = int(len(sample))
        return out


def _categorical(acc: _Categorical) -> dict[str, Any]:
    ranked = sorted(acc.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = dict(ranked[:TOP_CATEGORIES])
    total = acc.count + acc.nulls
    return {
        "type": "categorical",
        "count": total,
        "nulls": acc.nulls,
        "null_rate": acc.nulls / total if total else 0.0,
        "distinct": len(acc.counts) + (1 if acc.other else 0),
        "high_cardinality": bool(acc.other),
        "top": top,
        "other": acc.other + sum(n for _, n in ranked[TOP_CATEGORIES:]),
    }


def _as_float(column: Any) -> np.ndarray | None:
    try:
        return np.asarray(column.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    except (TypeError, ValueError):
        return None


def row_hashes(frame: Any) -> np.ndarray:
    """A 64-bit hash of each row's content (the index left out): equal rows, equal hashes."""
    import pandas as pd

    if frame.shape[1] == 0:
        return np.zeros(len(frame), dtype=np.uint64)
    return np.asarray(pd.util.hash_pandas_object(frame, index=False).to_numpy(), dtype=np.uint64)
