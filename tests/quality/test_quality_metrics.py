"""The quality statistics: the bootstrap's formulas equal torchmetrics', the exact tests equal scipy's."""

from __future__ import annotations

import numpy as np
import pytest

from ci_checks.quality import metrics as qm


def _probs(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, rng.integers(0, classes, n)


@pytest.mark.parametrize("name", ["accuracy", "f1", "precision", "recall", "loss", "ece"])
@pytest.mark.parametrize(("n", "classes"), [(7, 2), (60, 3), (250, 5)])
def test_the_bootstraps_formulas_equal_torchmetrics(name: str, n: int, classes: int) -> None:
    probs, targets = _probs(n, classes, seed=n + classes)
    whole = np.arange(n)[None]
    assert qm.per_resample(name, probs, targets, whole)[0] == pytest.approx(qm.point(name, probs, targets), abs=1e-5)


@pytest.mark.parametrize(("k", "n"), [(0, 0), (3, 10), (10, 10), (7, 30), (50, 120), (400, 700)])
def test_binomial_tail_equals_scipy(k: int, n: int) -> None:
    from scipy.stats import binom

    assert qm.binomial_tail(k, n) == pytest.approx(binom.sf(k - 1, n, 0.5) if n else 1.0, rel=1e-9, abs=1e-300)


def test_two_proportions_equals_a_pooled_z_test() -> None:
    from scipy.stats import norm

    base, head = np.array([True] * 10 + [False] * 90), np.array([True] * 25 + [False] * 75)
    p_worse, p_better = qm.two_proportions(base, head)
    pool = 35 / 200
    z = (0.25 - 0.10) / np.sqrt(pool * (1 - pool) * (2 / 100))
    assert p_worse == pytest.approx(norm.sf(z)) and p_better == pytest.approx(norm.cdf(z))


def test_the_confidence_threshold_is_the_lowest_that_reaches_the_precision() -> None:
    # confidences 0.9 (right), 0.8 (right), 0.7 (wrong), 0.6 (right): precision 1, 1, 2/3, 3/4 going down
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    targets = np.array([0, 0, 0, 0])
    assert qm.threshold_for_precision(probs, targets, 1.0) == (0.8, 1.0, 0.5)
    assert qm.threshold_for_precision(probs, targets, 0.75) == (0.6, 0.75, 1.0)
    threshold, best, coverage = qm.threshold_for_precision(np.array([[0.4, 0.6]]), np.array([0]), 0.5)
    assert threshold is None and best == 0.0 and coverage == 0.0


def test_a_paired_change_finds_a_real_drop_and_not_an_identical_model() -> None:
    probs, targets = _probs(400, 3, seed=1)
    worse = probs.copy()
    flip = np.flatnonzero(probs.argmax(1) == targets)[:60]
    worse[flip] = np.roll(worse[flip], 1, axis=1)
    drop = qm.paired_change("accuracy", probs, worse, targets, direction="higher", count=500, key="t")
    assert drop.delta < 0 and drop.p_worse < 1e-6 and drop.ci[1] < 0
    same = qm.paired_change("f1", probs, probs, targets, direction="higher", count=500, key="t")
    assert same.delta == 0 and same.p_worse == 1.0 and same.p_better == 1.0


def test_a_large_evaluation_set_is_resampled_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    probs, targets = _probs(300, 3, seed=5)
    whole = qm.estimate("f1", probs, targets, count=400, key="k")
    monkeypatch.setattr(qm, "CHUNK_CELLS", 300 * 7)  # 7 resamples at a time
    chunks = [index.shape for index in qm.resamples(300, count=400, key="k")]
    assert chunks[0] == (7, 300) and sum(rows for rows, _ in chunks) == 400
    chunked = qm.estimate("f1", probs, targets, count=400, key="k")
    assert chunked == qm.estimate("f1", probs, targets, count=400, key="k")  # still seeded
    assert chunked.value == whole.value and abs(chunked.ci[0] - whole.ci[0]) < 0.05
