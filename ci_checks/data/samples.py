"""Tensor, image and text datasets from a data spec: FILE.py:FUNCTION returning a torch Dataset, an iterable of
samples, or a dict of them by split.

A sample is (input, label), a dict with an input key (input, image, x, text, inputs) and a label key (label, y,
target, labels), or an input alone. Inputs may be torch tensors, numpy arrays, PIL images, numbers or strings.
Each sample is checked as it comes and reduced to a row of features (per-feature values of small vectors, channel
means and sizes of images, lengths of texts), so the statistics and drift of tabular data apply unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ci_checks._errors import UserError
from ci_checks.data.config import Dataset
from ci_checks.data.expect import Failures, label_checks

INPUT_KEYS = ("input", "inputs", "image", "img", "x", "text", "features")
LABEL_KEYS = ("label", "labels", "y", "target", "targets")
VECTOR_FEATURES = 32  # inputs with at most this many values are tracked value by value
CHUNK = 1024


def load_splits(ds: Dataset, where: str, path: str | None = None) -> dict[str, Any]:
    """Call the dataset's spec (with the data file, when the dataset names one); a dict of datasets becomes one
    dataset per split (name/split)."""
    from ci_checks.engine.usercode import UserCodeError, call_user
    from ci_checks.spec import _import_file, _split_ref

    ref = str(ds.spec)
    target, name, is_file = _split_ref(ref)
    module_path = os.path.join(ds.root, target) if is_file else target
    if is_file and not os.path.isfile(module_path):
        raise UserError(f"{where} {ds.where}: data spec file {target} not found (paths are relative to {ds.root})")
    try:
        if is_file:
            module = call_user("importing the data spec", _import_file, module_path)
        else:
            import importlib

            module = call_user("importing the data spec", importlib.import_module, target)
        fn = getattr(module, name, None)
        if not callable(fn):
            raise UserError(f"{where} {ds.where}: {target} defines no function {name!r}")
        file = path or ds.path
        _check_signature(fn, ref, bool(file), f"{where} {ds.where}")
        value = call_user("the data spec", fn, file) if file else call_user("the data spec", fn)
    except UserCodeError as e:
        raise UserError(f"{where} {ds.where}: data spec {ref}: {e}") from None
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {"": value}


def _check_signature(fn: Callable[..., Any], ref: str, with_path: bool, where: str) -> None:
    """A spec that cannot take the call it gets is a usage error, named before it runs."""
    import inspect

    try:
        inspect.signature(fn).bind(*(["path"] if with_path else []))
    except TypeError:
        if with_path:
            raise UserError(
                f"{where}: data spec {ref} takes no argument, but the dataset sets path, so it is called with the "
                "data file's path; define it as def FUNCTION(path), or remove path"
            ) from None
        raise UserError(
            f"{where}: data spec {ref} needs arguments; give them defaults, or set path to have the data file's "
            "path passed to it"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        return


def iterate(data: Any, limit: int) -> Iterator[tuple[int, Any]]:
    """(index, sample) of a map-style dataset (len and indexing) or any iterable; at most limit samples (0: all)."""
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (str, bytes)):
        n = len(data)
        for i in range(n if not limit else min(n, limit)):
            yield i, data[i]
        return
    if not hasattr(data, "__iter__"):
        raise TypeError(f"a {type(data).__name__} is neither a Dataset nor an iterable of samples")
    for i, sample in enumerate(data):
        if limit and i >= limit:
            return
        yield i, sample


def split_sample(sample: Any) -> tuple[Any, Any]:
    """The input and the label of a sample (None: no label)."""
    if isinstance(sample, Mapping):
        x = next((sample[k] for k in INPUT_KEYS if k in sample), None)
        y = next((sample[k] for k in LABEL_KEYS if k in sample), None)
        if x is None:
            raise TypeError(f"a sample dict has none of the input keys {', '.join(INPUT_KEYS)}")
        return x, y
    if isinstance(sample, (tuple, list)) and len(sample) == 2:
        return sample[0], sample[1]
    return sample, None


def to_array(x: Any) -> np.ndarray | str:
    """A sample's input as a numpy array (tensors, PIL images, numbers) or a string (text)."""
    if isinstance(x, str):
        return x
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if hasattr(x, "detach"):  # a torch tensor
        return np.asarray(x.detach().cpu().numpy())
    return np.asarray(x)


def label_value(y: Any) -> str | None:
    if y is None:
        return None
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.size == 1:
        value = arr.reshape(()).item()
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return "[" + ",".join(str(v) for v in arr.reshape(-1)[:8].tolist()) + "]"


def exact_hash(x: np.ndarray | str) -> int:
    """64 bits of BLAKE2 of the input's bytes, shape and dtype."""
    h = hashlib.blake2b(digest_size=8)
    if isinstance(x, str):
        h.update(b"s" + x.encode("utf-8", "replace"))
    else:
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return int.from_bytes(h.digest(), "little")


_WORDS = re.compile(r"\w+")


def near_hash(x: np.ndarray | str) -> int | None:
    """A hash equal for inputs that differ only a little: the words of a text, lowercased; an average hash of an
    image (8x8 block means above their mean). None for other inputs: for a vector of a few features, nearness is
    what the model learns from, not a duplicate."""
    if isinstance(x, str):
        return exact_hash(" ".join(_WORDS.findall(x.lower())))
    a = np.nan_to_num(np.asarray(x, dtype=float))
    if a.ndim in (2, 3) and min(_spatial(a)) >= 8:
        gray = _gray(a)
        h, w = gray.shape
        blocks = gray[: h - h % 8, : w - w % 8].reshape(8, (h - h % 8) // 8, 8, (w - w % 8) // 8).mean(axis=(1, 3))
        bits = (blocks > blocks.mean()).reshape(-1)
        return int(np.packbits(bits).view(">u8")[0])
    return None


def _channels_last(a: np.ndarray) -> bool:
    return a.ndim == 3 and a.shape[-1] <= 4 < a.shape[0]


def _spatial(a: np.ndarray) -> tuple[int, int]:
    if a.ndim == 2:
        return int(a.shape[0]), int(a.shape[1])
    if _channels_last(a):
        return int(a.shape[0]), int(a.shape[1])
    return int(a.shape[-2]), int(a.shape[-1])


def _gray(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a
    if _channels_last(a):
        return np.asarray(a.mean(axis=-1))
    return np.asarray(a.reshape(-1, a.shape[-2], a.shape[-1]).mean(axis=0))


def features(x: np.ndarray | str) -> dict[str, float]:
    """The row of features a sample adds to the statistics."""
    if isinstance(x, str):
        return {"length": float(len(x)), "words": float(len(_WORDS.findall(x)))}
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        return {}
    if a.size <= VECTOR_FEATURES and a.ndim <= 1:
        flat = a.reshape(-1).astype(float)
        return {f"x[{i}]": float(v) for i, v in enumerate(flat)}
    if a.ndim in (2, 3) and min(_spatial(a)) >= 4:  # an image
        h, w = _spatial(a)
        out = {"height": float(h), "width": float(w)}
        if a.ndim == 3:
            per_channel = a.reshape(h * w, -1) if _channels_last(a) else a.reshape(a.shape[0], -1).T
            for c, m in enumerate(per_channel.astype(float).mean(axis=0).tolist()):
                out[f"channel {c} mean"] = float(m)
        else:
            out["channel 0 mean"] = float(a.astype(float).mean())
        return out
    f = a.astype(float)
    return {"mean": float(np.nanmean(f)) if f.size else 0.0, "std": float(np.nanstd(f)) if f.size else 0.0}


@dataclass
class SamplePass:
    """What one pass over a spec dataset leaves: failures, label counts, hashes and the rows of features."""

    count: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    label_rows: dict[str, int] = field(default_factory=dict)
    exact: list[int] = field(default_factory=list)
    near: list[int] = field(default_factory=list)  # near hashes, of the samples in near_index
    near_index: list[int] = field(default_factory=list)
    shapes: dict[str, int] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)


def scan(
    ds: Dataset,
    data: Any,
    failures: Failures,
    *,
    on_chunk: Callable[[Any, np.ndarray], None] | None,
    limit: int,
    progress: Callable[[int], None],
) -> SamplePass:
    """Check every sample of one split and hand rows of features to on_chunk; the user's code raising is a finding."""
    import pandas as pd

    from ci_checks.engine.usercode import UserCodeError, call_user

    state = SamplePass()
    shape = ds.get("shape")
    dtype = ds.get("dtype")
    low, high = ds.get("min"), ds.get("max")
    finite = ds.get("finite", True)
    rows: list[dict[str, float]] = []
    hashes: list[int] = []

    def flush() -> None:
        if on_chunk is not None and rows:
            frame = pd.DataFrame(rows)
            frame.index = range(state.count - len(rows), state.count)
            on_chunk(frame, np.asarray(hashes, dtype=np.uint64))
        rows.clear()
        hashes.clear()
        progress(state.count)

    def samples() -> Iterator[tuple[int, Any]]:
        yield from iterate(data, limit)

    it = samples()
    while True:
        try:
            item = call_user("reading a sample", next, it, None)
        except UserCodeError as e:
            unreadable = failures.get("samples can be read")
            unreadable.count += 1
            unreadable.rows.append(state.count)
            unreadable.values.append(e.describe()[:200])  # the whole first line: it is the finding
            break
        if item is None:
            break
        i, sample = item
        try:
            raw_x, raw_y = split_sample(sample)
            x = to_array(raw_x)
        except (TypeError, ValueError) as e:
            failures.get("samples are (input, label) or a dict of them").add(i, str(e))
            state.count += 1
            continue
        y = label_value(raw_y)
        state.count += 1
        if not isinstance(x, str):
            key = "x".join(str(d) for d in x.shape) or "scalar"
            state.shapes[key] = state.shapes.get(key, 0) + 1
            state.dtypes[str(x.dtype)] = state.dtypes.get(str(x.dtype), 0) + 1
            if shape is not None and (len(shape) != x.ndim or any(s not in (-1, d) for s, d in zip(shape, x.shape))):
                failures.get(f"input shape {list(shape)}").add(i, list(x.shape))
            if dtype is not None and str(x.dtype) != str(dtype):
                failures.get(f"input dtype {dtype}").add(i, x.dtype)
            if x.dtype.kind in "biuf" and x.size:
                xf = x.astype(float, copy=False)
                if finite and not np.isfinite(xf).all():
                    bad = int((~np.isfinite(xf)).sum())
                    failures.get("inputs finite (no NaN or infinity)").add(i, f"{bad} non-finite values")
                if low is not None and np.nanmin(xf) < low:
                    failures.get(f"input values >= {low:g}").add(i, f"min {np.nanmin(xf):.6g}")
                if high is not None and np.nanmax(xf) > high:
                    failures.get(f"input values <= {high:g}").add(i, f"max {np.nanmax(xf):.6g}")
        if y is not None:
            if y not in state.labels:
                state.label_rows[y] = i
            state.labels[y] = state.labels.get(y, 0) + 1
        elif ds.get("classes") is not None:
            failures.get("every sample has a label").add(i, "no label")
        h = exact_hash(x)
        state.exact.append(h)
        if ds.get("near-duplicates", "warning") != "off":
            near = near_hash(x)
            if near is not None:
                state.near.append(near)
                state.near_index.append(state.count - 1)
        row = features(x)
        if y is not None:
            row["label"] = y  # type: ignore[assignment]
        rows.append(row)
        hashes.append(h)
        if len(rows) >= CHUNK:
            flush()
    flush()
    label_checks(ds, state.labels, state.label_rows, state.count, failures, "labels")
    return state
