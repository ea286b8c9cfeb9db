"""Which metrics gate the pull request, and the error control across many metrics.

A pull request with 500 metrics must not fail 500 times as often as one with a single metric. The scheme:

- The gating metrics are those a [tool.ci-checks.metrics] policy declares with ``required = true``; while none
  is declared, every metric gates (``[tool.ci-checks.compare] gate`` chooses: auto, declared, all). A policy with
  ``required = false`` never gates.
- A gating metric regresses when Holm's step-down test across the gating metrics (one-sided, in the worse
  direction) rejects at its alpha: the chance that a pull request with no real change fails stays at alpha
  however many metrics gate, under any correlation between them. With one gating metric Holm is the plain test.
- Everything else a report flags (improved, changed with no known direction, a regression of a report-only
  metric) comes from Benjamini-Hochberg across every tested metric (two-sided) at alpha, and so does the
  diverged-seed flag (over the metrics that have 3+ seeds): at most alpha of what is flagged is noise, and with
  no real change nothing is flagged with probability 1 - alpha.
- Metrics without repeated measurements (or with no seed-to-seed variance) have no p-value: the tolerance alone
  decides them, as before, and they take no part in the corrections.

``correction = "none"`` judges each metric alone at its alpha, as ci-checks 0.1 did.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_checks.compare.files import Metric
from ci_checks.compare.policy import Policy, judge, measure
from ci_checks.compare.stats import Outlier, benjamini_hochberg, holm, outlier
from ci_checks.results import Verdict


@dataclass
class Assessment:
    """One metric on its way to a verdict: its raw figures first, the corrected p-values and verdict later."""

    name: str
    base: Metric | None
    head: Metric | None
    policy: Policy
    state: Verdict | None = None  # decided without a test: missing, invalid, new or skipped
    measured: dict[str, Any] | None = None
    outliers: list[tuple[str, Outlier]] = field(default_factory=list)  # ("base" or "head", the farthest seed)
    outlier_p: float | None = None  # over both sides (Bonferroni), before the correction across metrics
    gating: bool = False
    p_gate: float | None = None  # Holm-adjusted p of a worse change (gating metrics with a direction)
    p_flag: float | None = None  # Benjamini-Hochberg-adjusted two-sided p
    p_outlier: float | None = None  # Benjamini-Hochberg-adjusted outlier p
    verdict: Verdict | None = None
    p_adjusted: float | None = None  # the corrected p-value that decided the verdict
    adjusted_by: str | None = None  # "holm" or "bh": the correction p_adjusted comes from

    @property
    def diverged(self) -> tuple[str, Outlier] | None:
        """The seed flagged as diverged (after the correction): the side's farthest one, or None."""
        if self.p_outlier is None or self.p_outlier >= self.policy.alpha:
            return None
        return min(self.outliers, key=lambda so: so[1].p_value)


def assess(name: str, base: Metric | None, head: Metric | None, policy: Policy, *, first_run: bool) -> Assessment:
    """The raw figures of one metric: its state, or its change and p-values; and its most extreme seeds."""
    a = Assessment(name, base, head, policy)
    if head is None:
        a.state = Verdict.MISSING
    elif head.invalid is not None:
        a.state = Verdict.INVALID
    elif head.nested or (base is not None and base.nested and base.invalid is None):
        a.state = Verdict.SKIPPED
    elif base is None or first_run:
        a.state = Verdict.NEW
    elif base.invalid is not None:
        a.state = Verdict.INVALID
    else:
        a.measured = measure(base.samples, head.samples, policy, seed=zlib.crc32(name.encode()))

    def usable(m: Metric | None) -> list[float]:
        return m.samples if m is not None and m.invalid is None and not m.nested else []

    for side, this, other in (("head", head, base), ("base", base, head)):
        if side == "base" and first_run:
            continue
        found = outlier(usable(this), usable(other))
        if found is not None:
            a.outliers.append((side, found))
    if a.outliers:
        a.outlier_p = min(1.0, len(a.outliers) * min(o.p_value for _, o in a.outliers))
    return a


def choose_gating(assessments: Sequence[Assessment], gate: str) -> str:
    """Mark the gating metrics; return which family gates: "declared" or "all"."""
    declared = any(a.policy.declared for a in assessments)
    family = "declared" if gate == "declared" or (gate == "auto" and declared) else "all"
    for a in assessments:
        a.gating = a.policy.required and (a.policy.declared or family == "all")
    return family


def correct(assessments: Sequence[Assessment], correction: str) -> None:
    """Set the corrected p-values and every verdict."""
    if correction == "holm":
        gate = [a for a in assessments if a.gating and a.measured and a.measured["p_worse"] is not None]
        for a, p in zip(gate, holm([a.measured["p_worse"] for a in gate if a.measured])):
            a.p_gate = p
        tested = [a for a in assessments if a.measured and a.measured["p_two"] is not None]
        for a, p in zip(tested, benjamini_hochberg([a.measured["p_two"] for a in tested if a.measured])):
            a.p_flag = p
    flagged = [a for a in assessments if a.outlier_p is not None]
    for a, p in zip(flagged, benjamini_hochberg([a.outlier_p for a in flagged if a.outlier_p is not None])):
        a.p_outlier = p  # always corrected: an informational flag must not fire on most pull requests
    for a in assessments:
        a.verdict = _verdict(a, correction)


def _verdict(a: Assessment, correction: str) -> Verdict:
    if a.state is not None:
        return a.state
    m = a.measured
    assert m is not None
    alpha = a.policy.alpha

    def below(p: float | None) -> bool:
        return p is not None and p < alpha

    if correction == "none":
        return judge(m, a.policy, worse=below(m["p_worse"]), better=below(m["p_better"]), changed=below(m["p_two"]))
    worse = below(a.p_gate) if a.p_gate is not None else below(a.p_flag)
    verdict = judge(m, a.policy, worse=worse, better=below(a.p_flag), changed=below(a.p_flag))
    worse_way = m["p_worse"] is not None and m["p_worse"] <= 0.5
    if a.p_gate is not None and worse_way:
        a.p_adjusted, a.adjusted_by = a.p_gate, "holm"
    else:
        a.p_adjusted, a.adjusted_by = a.p_flag, "bh"
    return verdict
