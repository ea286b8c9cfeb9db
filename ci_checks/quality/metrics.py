"""Quality metrics on per-example results: torchmetrics for the point estimates, a seeded paired bootstrap (numpy,
the same formulas on confusion counts) for confidence intervals and changes, calibration, and exact paired tests.

No scipy: the binomial tail of McNemar's exact test is summed in log space; the tests check it against scipy.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHUNK_CELLS = 16_000_000  # resample indices held at once (128 MB of int64; 2,000 resamples of 8,000 examples)
N_BINS = 15  # reliability-diagram and ECE bins, as torchmetrics' default
LEVEL = 0.95  # confidence intervals


def point(name: str, probs: Any, targets: Any) -> float:
    """The metric on these examples, computed with torchmetrics (multiclass; macro averages over classes)."""
    import numpy as np
    import torch
    from torchmetrics.functional import classification as tmc

    if len(targets) == 0:
        return math.nan
    if name == "loss":
        return float(np.mean(-np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, 1.0))))
    p, t, c = torch.from_numpy(np.asarray(probs)), torch.from_numpy(np.asarray(targets)), int(probs.shape[1])
    if name == "ece":
        return float(tmc.multiclass_calibration_error(p.float(), t, num_classes=c, n_bins=N_BINS, norm="l1"))
    fn: Any = {
        "accuracy": tmc.multiclass_accuracy,
        "f1": tmc.multiclass_f1_score,
        "precision": tmc.multiclass_precision,
        "recall": tmc.multiclass_recall,
    }[name]
    average = "micro" if name == "accuracy" else "macro"
    return float(fn(p.argmax(1), t, num_classes=c, average=average))


def _confusions(targets: Any, preds: Any, classes: int, index: Any) -> Any:
    """Confusion counts [B, C, C] (true, predicted) of each resample (rows of index)."""
    import numpy as np

    b = index.shape[0]
    cells = (np.arange(b)[:, None] * classes * classes + targets[index] * classes + preds[index]).ravel()
    return np.bincount(cells, minlength=b * classes * classes).reshape(b, classes, classes).astype(np.float64)


def from_confusions(name: str, cm: Any) -> Any:
    """The metric of each confusion matrix [B, C, C], as torchmetrics computes it (macro: classes absent from both
    targets and predictions do not count)."""
    import numpy as np

    tp = np.diagonal(cm, axis1=1, axis2=2)
    total = cm.sum(axis=(1, 2))
    if name == "accuracy":
        return tp.sum(1) / np.maximum(total, 1)
    fp, fn = cm.sum(1) - tp, cm.sum(2) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "precision":
            per = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        elif name == "recall":
            per = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        else:
            per = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    weight = (tp + fp + fn > 0).astype(np.float64)
    return (per * weight).sum(1) / np.maximum(weight.sum(1), 1)


def _ece(conf: Any, correct: Any, index: Any) -> Any:
    """Expected calibration error (l1, N_BINS equal-width bins of the top probability) of each resample."""
    import numpy as np

    bins = np.clip(np.ceil(conf * N_BINS).astype(np.int64) - 1, 0, N_BINS - 1)
    b, n = index.shape
    cells = (np.arange(b)[:, None] * N_BINS + bins[index]).ravel()
    size = b * N_BINS
    conf_sum = np.bincount(cells, weights=conf[index].ravel(), minlength=size).reshape(b, N_BINS)
    acc_sum = np.bincount(cells, weights=correct[index].ravel().astype(np.float64), minlength=size).reshape(b, N_BINS)
    return np.abs(conf_sum - acc_sum).sum(1) / max(n, 1)


def per_resample(name: str, probs: Any, targets: Any, index: Any) -> Any:
    """The metric (or "ece") on each resample of the examples (rows of index)."""
    import numpy as np

    if name == "loss":
        losses = -np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, 1.0))
        return losses[index].mean(1)
    preds = probs.argmax(1)
    if name == "ece":
        return _ece(probs.max(1), preds == targets, index)
    return from_confusions(name, _confusions(targets, preds, probs.shape[1], index))


@functools.lru_cache(maxsize=4)
def _small_resamples(n: int, count: int, key: str) -> Any:
    import numpy as np

    index = np.random.default_rng(zlib.crc32(key.encode("utf-8"))).integers(0, n, size=(count, n))
    index.flags.writeable = False
    return index


def resamples(n: int, *, count: int, key: str) -> Iterator[Any]:
    """The bootstrap's resample indices, [rows, n] at a time (count rows in all), seeded by key: the same on every
    machine and both sides; the metrics of one slice share them (read-only). At most CHUNK_CELLS indices are held at
    once, so a large evaluation set costs time, not memory."""
    import numpy as np

    rows = max(1, CHUNK_CELLS // max(n, 1))
    if rows >= count:
        yield _small_resamples(n, count, key)
        return
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    for start in range(0, count, rows):
        yield rng.integers(0, n, size=(min(rows, count - start), n))


def bootstrap(name: str, probs: Any, targets: Any, *, count: int, key: str) -> Any:
    """The metric on each of count resamples of the examples."""
    import numpy as np

    return np.concatenate(
        [per_resample(name, probs, targets, index) for index in resamples(len(targets), count=count, key=key)]
    )


def interval(values: Any, level: float = LEVEL) -> tuple[float, float]:
    import numpy as np

    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Estimate:
    """A metric on a set of examples with its bootstrap confidence interval."""

    value: float
    ci: tuple[float, float]
    n: int


def estimate(name: str, probs: Any, targets: Any, *, count: int, key: str) -> Estimate:
    n = len(targets)
    value = point(name, probs, targets)
    if n < 2:
        return Estimate(value, (value, value), n)
    return Estimate(value, interval(bootstrap(name, probs, targets, count=count, key=key)), n)


@dataclass(frozen=True)
class Change:
    """head - base of a metric on the same examples, with the paired bootstrap's interval and one-sided p-values."""

    base: float
    head: float
    delta: float
    ci: tuple[float, float]
    p_worse: float
    p_better: float
    n: int

    @property
    def p_two(self) -> float:
        return min(1.0, 2.0 * min(self.p_worse, self.p_better))


def paired_change(
    name: str, base_probs: Any, head_probs: Any, targets: Any, *, direction: str, count: int, key: str
) -> Change:
    """The change of a metric between two models on the same examples: both resampled with the same indices, so
    what the models agree on cancels and only their differences are tested."""
    import numpy as np

    n = len(targets)
    base, head = point(name, base_probs, targets), point(name, head_probs, targets)
    if n < 2:
        return Change(base, head, head - base, (head - base, head - base), 1.0, 1.0, n)
    diffs = np.concatenate(
        [
            per_resample(name, head_probs, targets, index) - per_resample(name, base_probs, targets, index)
            for index in resamples(n, count=count, key=key)
        ]
    )
    worse = diffs <= 0 if direction == "higher" else diffs >= 0
    better = diffs >= 0 if direction == "higher" else diffs <= 0
    # The achieved one-sided significance, as compare's bootstrap: the share of resamples on the other side of 0.
    p_worse = (float(better.sum()) + 1.0) / (count + 1.0)
    p_better = (float(worse.sum()) + 1.0) / (count + 1.0)
    if float(abs(diffs).max(initial=0.0)) == 0.0:  # the two models agree on every example
        p_worse = p_better = 1.0
    if name == "accuracy":
        # Exact and as small as the evidence allows (a bootstrap's p-value stops at 1 / (count + 1)): McNemar's
        # test on the examples only one of the two models gets right.
        preds_b, preds_h = base_probs.argmax(1), head_probs.argmax(1)
        p_worse, p_better, _, _ = mcnemar(preds_b != targets, preds_h != targets)
    return Change(base, head, head - base, interval(diffs), p_worse, p_better, n)


# ---------------------------------------------------------------- calibration


def reliability(probs: Any, targets: Any) -> list[dict[str, float]]:
    """The reliability diagram's bins: [lo, hi), count, mean confidence, accuracy (empty bins left out)."""
    import numpy as np

    conf, correct = probs.max(1), probs.argmax(1) == targets
    bins = np.clip(np.ceil(conf * N_BINS).astype(np.int64) - 1, 0, N_BINS - 1)
    rows = []
    for b in range(N_BINS):
        inside = bins == b
        if inside.any():
            rows.append(
                {
                    "lo": b / N_BINS,
                    "hi": (b + 1) / N_BINS,
                    "count": int(inside.sum()),
                    "confidence": float(conf[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                }
            )
    return rows


def threshold_for_precision(probs: Any, targets: Any, target: float) -> tuple[float | None, float, float]:
    """The lowest confidence threshold whose accepted predictions (top probability >= it) reach the target
    precision: (threshold, precision there, coverage = share accepted); (None, best precision, 0.0) when none does."""
    import numpy as np

    conf, correct = probs.max(1), probs.argmax(1) == targets
    order = np.argsort(-conf, kind="stable")
    conf_sorted, hits = conf[order], np.cumsum(correct[order])
    n = len(conf)
    if n == 0:
        return None, math.nan, 0.0
    precision = hits / np.arange(1, n + 1)
    # Only cut where the confidence changes: a threshold accepts every example at or above it.
    last_of_value = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    ok = np.flatnonzero(last_of_value & (precision >= target))
    if ok.size == 0:
        return None, float(precision[last_of_value].max()), 0.0
    k = int(ok.max())
    return float(conf_sorted[k]), float(precision[k]), (k + 1) / n


# ---------------------------------------------------------------- paired failure counts


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), summed in log space (exact for any n)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0) for i in range(k, n + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def mcnemar(base_failed: Any, head_failed: Any) -> tuple[float, float, int, int]:
    """McNemar's exact test on paired pass/fail outcomes: (p that head fails more, p that it fails less, cases that
    fail only in head, cases that fail only in base)."""
    import numpy as np

    only_head = int(np.sum(head_failed & ~base_failed))
    only_base = int(np.sum(base_failed & ~head_failed))
    n = only_head + only_base
    return binomial_tail(only_head, n), binomial_tail(only_base, n), only_head, only_base


def two_proportions(base_failed: Any, head_failed: Any) -> tuple[float, float]:
    """Unpaired one-sided p-values (head fails more, head fails less) of two failure rates: a pooled z-test."""
    from statistics import NormalDist

    nb, nh = len(base_failed), len(head_failed)
    if nb == 0 or nh == 0:
        return 1.0, 1.0
    pb, ph = float(sum(base_failed)) / nb, float(sum(head_failed)) / nh
    pool = (pb * nb + ph * nh) / (nb + nh)
    se = math.sqrt(pool * (1 - pool) * (1 / nb + 1 / nh))
    if se == 0:
        return (0.0, 1.0) if ph > pb else (1.0, 0.0) if ph < pb else (1.0, 1.0)
    z = (ph - pb) / se
    return 1.0 - NormalDist().cdf(z), NormalDist().cdf(z)
