"""Judge an evaluation (and maybe the base revision's): per-slice metrics, behavioural tests, calibration, named
suites and prediction flips, as check results.

Against the base, every comparison the gate may fail on (a metric of a slice large enough to judge, a behavioural
failure rate, the calibration error, a named suite) is one-sided and paired on the examples both sides share, and
Holm's correction runs across all of them: a pull request that changes nothing fails at most alpha of the time,
however many slices and tests there are. Improvements and changes are flagged by Benjamini-Hochberg over the same
family. The thresholds and the gate come from the policy the caller passes (the base revision's when comparing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_checks.compare.stats import benjamini_hochberg, holm
from ci_checks.quality import metrics as qm
from ci_checks.quality.evaluate import Evaluation
from ci_checks.quality.spec import METRICS
from ci_checks.results import CheckResult, Kind

WHOLE = "(all)"  # the whole evaluation set, shown as the first slice
WORST = 5  # worst examples listed per behavioural test


@dataclass
class Test:
    """One comparison with the base on its way to a verdict."""

    row: dict[str, Any]  # the figures row it writes its verdict into
    result: CheckResult
    what: str  # how findings name it
    p_worse: float
    p_better: float
    material: bool  # the change is beyond the tolerance in the worse direction
    fix: str = "look at the examples it now gets wrong, or explain the trade-off in the pull request"
    p_gate: float = 1.0
    p_flag: float = 1.0


@dataclass
class Judged:
    results: list[CheckResult]
    tests: list[Test] = field(default_factory=list)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _align(head: Evaluation, base: Evaluation) -> tuple[Any, Any]:
    """Indices into head and base of the examples both evaluated (by id), in head's order."""
    import numpy as np

    where = {i: k for k, i in enumerate(base.ids)}
    pairs = [(k, where[i]) for k, i in enumerate(head.ids) if i in where]
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    h, b = zip(*pairs)
    return np.asarray(h, dtype=np.int64), np.asarray(b, dtype=np.int64)


def judge(
    head: Evaluation, base: Evaluation | None, policy: Mapping[str, Any], *, base_name: str = "main"
) -> list[CheckResult]:
    """The quality check results of head (against base when given), judged by policy ([tool.ci-checks.quality])."""
    count = int(policy["bootstrap"])
    aligned = _align(head, base) if base is not None else None
    judged = Judged([])
    _slices(judged, head, base, aligned, policy, count)
    _behaviour(judged, head, base, policy)
    _calibration(judged, head, base, aligned, policy, count)
    _suites(judged, head, base, float(policy["rate-tol"]))
    if base is not None and aligned is not None:
        judged.results.append(_flips(head, base, aligned, base_name))
    _verdicts(judged, policy, base_name)
    return judged.results


def _result(name: str, suite: str) -> CheckResult:
    return CheckResult(name, figures={"kind": Kind.QUALITY.value, "suite": suite})


# ---------------------------------------------------------------- slices


def _slices(
    judged: Judged, head: Evaluation, base: Evaluation | None, aligned: Any, policy: Mapping[str, Any], count: int
) -> None:
    import numpy as np

    result = _result("quality slices", "slices")
    judged.results.append(result)
    floors: Mapping[str, float] = policy.get("min") or {}
    names = list(dict.fromkeys([*head.metrics, *(m for m in floors if m in METRICS)]))
    masks: dict[str, Any] = {WHOLE: np.ones(len(head.ids), dtype=bool), **head.slices}
    base_only: dict[str, Any] = {}
    if base is not None:
        for name, mask in base.slices.items():
            if name not in masks:
                base_only[name] = mask  # a slice the pull request drops is still judged, by the base's definition
    rows: list[dict[str, Any]] = []
    small = int(policy["min-slice-size"])
    for name, mask in masks.items():
        idx = np.flatnonzero(mask)
        row: dict[str, Any] = {"slice": name, "n": int(idx.size), "metrics": {}, "judged": idx.size >= small}
        for metric in names:
            est = qm.estimate(metric, head.probs[idx], head.targets[idx], count=count, key=f"slice:{name}")
            row["metrics"][metric] = {"value": _r(est.value), "ci": [_r(est.ci[0]), _r(est.ci[1])]}
            floor = floors.get(metric)
            if floor is None or not row["judged"] or math.isnan(est.value):
                continue
            lower = METRICS[metric] == "lower"
            if (est.value > floor) if lower else (est.value < floor):
                result.add(
                    "error",
                    f"slice '{name}': {metric} {est.value:.4g} is {'above' if lower else 'below'} the declared "
                    f"{'ceiling' if lower else 'floor'} {floor:g} (n={idx.size}, 95% CI "
                    f"{est.ci[0]:.3g}..{est.ci[1]:.3g})"
                    " - fix the model on this slice, or change min in the base branch's [tool.ci-checks.quality]",
                    reason="quality-threshold",
                    slice=name,
                    metric=metric,
                    value=est.value,
                    threshold=floor,
                )
        if idx.size and not row["judged"]:
            row["note"] = f"fewer than {small} examples: shown, not judged"
        rows.append(row)
    if base is not None and aligned is not None:
        h_idx, b_idx = aligned
        for row in rows:
            mask = masks[row["slice"]][h_idx]
            _compare_slice(judged, result, row, head, base, h_idx[mask], b_idx[mask], names, policy, count)
        for name, mask in base_only.items():
            row = {
                "slice": name,
                "n": 0,
                "metrics": {},
                "judged": False,
                "note": "dropped by this change: judged by the base's definition",
            }
            inside = mask[b_idx]  # the base's mask, on the examples both sides evaluated
            hk, bk = h_idx[inside], b_idx[inside]
            row["n"], row["judged"] = int(hk.size), hk.size >= small
            rows.append(row)
            _compare_slice(judged, result, row, head, base, hk, bk, names, policy, count)
    result.figures.update(rows=rows, metrics=names)
    worst = min(
        (r for r in rows if r["metrics"].get(names[0], {}).get("value") is not None),
        key=lambda r: _badness(r, names[0]),
        default=None,
    )
    result.summary = f"{len(rows) - 1} slice(s) of {rows[0]['n']} examples" + (
        f"; worst {names[0]} {worst['metrics'][names[0]]['value']:.3g} on '{worst['slice']}'" if worst else ""
    )


def _badness(row: Mapping[str, Any], metric: str) -> float:
    value = float(row["metrics"][metric]["value"])
    return -value if METRICS.get(metric) == "lower" else value


def _compare_slice(
    judged: Judged,
    result: CheckResult,
    row: dict[str, Any],
    head: Evaluation,
    base: Evaluation,
    h: Any,
    b: Any,
    names: list[str],
    policy: Mapping[str, Any],
    count: int,
) -> None:
    row.setdefault("compared", {})
    if h.size < 2:
        return
    targets = head.targets[h]
    for metric in names:
        direction = METRICS[metric]
        ch = qm.paired_change(
            metric,
            base.probs[b],
            head.probs[h],
            targets,
            direction=direction,
            count=count,
            key=f"slice:{row['slice']}",
        )
        cell = {
            "base": _r(ch.base),
            "head": _r(ch.head),
            "delta": _r(ch.delta),
            "ci": [_r(ch.ci[0]), _r(ch.ci[1])],
            "n": ch.n,
            "direction": direction,
        }
        row["compared"][metric] = cell
        worse = -ch.delta if direction == "higher" else ch.delta
        if not row["judged"]:
            cell["verdict"] = "not-judged"  # fewer than min-slice-size examples: shown, never gating
            continue
        judged.tests.append(
            Test(
                cell,
                result,
                f"slice '{row['slice']}': {metric}",
                ch.p_worse,
                ch.p_better,
                worse > float(policy["abs-tol"]),
            )
        )


# ---------------------------------------------------------------- behavioural tests


def _behaviour(judged: Judged, head: Evaluation, base: Evaluation | None, policy: Mapping[str, Any]) -> None:
    import numpy as np

    if not head.behaviour and not (base and base.behaviour):
        return
    result = _result("quality behaviour", "behaviour")
    judged.results.append(result)
    rates: Mapping[str, float] = policy.get("failure-rates") or {}
    rows = []
    for name, run in head.behaviour.items():
        n = len(run.ids)
        failures = int(np.sum(run.failed))
        rate = failures / n if n else 0.0
        limit = float(rates.get(name, policy["max-failure-rate"]))
        order = np.argsort(-run.violation, kind="stable")[:WORST]
        worst = [{"id": run.ids[i], "violation": _r(float(run.violation[i]))} for i in order if run.failed[i]]
        row: dict[str, Any] = {
            "test": name,
            "type": run.type,
            "n": n,
            "failures": failures,
            "rate": _r(rate),
            "max_rate": limit,
            "worst": worst,
        }
        rows.append(row)
        if rate > limit:
            ids = ", ".join(str(w["id"]) for w in worst[:3])
            result.add(
                "error",
                f"{run.type} '{name}': {failures} of {n} cases fail ({rate:.1%}, allowed {limit:.1%}); worst: {ids}"
                " - fix the model or the preprocessing, or set failure-rates in the base branch's "
                "[tool.ci-checks.quality]",
                reason="quality-threshold",
                test=name,
                rate=rate,
                threshold=limit,
            )
        if base is not None and name in base.behaviour:
            _compare_behaviour(judged, result, row, run, base.behaviour[name], float(policy["rate-tol"]))
    if base is not None:
        for name in base.behaviour:
            if name not in head.behaviour:
                rows.append({"test": name, "type": base.behaviour[name].type, "n": 0, "missing": True})
                result.add(
                    "warning",
                    f"behavioural test '{name}' of the base is gone from this change's quality spec; keep it, or say "
                    "why it was removed",
                    reason="quality-missing",
                    test=name,
                )
    result.figures["rows"] = rows
    failing = sum(1 for r in rows if r.get("rate") is not None and r["rate"] > r["max_rate"])
    result.summary = f"{len(rows)} test(s), {failing} over their failure rate"


def _compare_behaviour(
    judged: Judged, result: CheckResult, row: dict[str, Any], head: Any, base: Any, tolerance: float
) -> None:
    import numpy as np

    where = {i: k for k, i in enumerate(base.ids)}
    pairs = [(k, where[i]) for k, i in enumerate(head.ids) if i in where]
    cell: dict[str, Any] = {"base_rate": _r(float(np.mean(base.failed))) if len(base.ids) else None}
    row["compared"] = cell
    if len(pairs) >= max(1, len(head.ids) // 2):
        h = np.asarray([k for k, _ in pairs])
        b = np.asarray([k for _, k in pairs])
        p_worse, p_better, only_head, only_base = qm.mcnemar(base.failed[b].astype(bool), head.failed[h].astype(bool))
        cell.update(test="mcnemar", only_head=only_head, only_base=only_base, n=len(pairs))
        delta = (only_head - only_base) / len(pairs)
    else:
        p_worse, p_better = qm.two_proportions(base.failed.astype(bool), head.failed.astype(bool))
        cell.update(test="two-proportions", n=len(head.ids))
        delta = float(np.mean(head.failed)) - float(np.mean(base.failed))
    cell["delta"] = _r(delta)
    # A retrained model's behaviour varies with its seed, which the paired test (over cases) does not see: a rise
    # within rate-tol is never a regression.
    judged.tests.append(
        Test(cell, result, f"{head.type} '{head.name}' failure rate", p_worse, p_better, delta > tolerance)
    )


# ---------------------------------------------------------------- calibration


def _calibration(
    judged: Judged, head: Evaluation, base: Evaluation | None, aligned: Any, policy: Mapping[str, Any], count: int
) -> None:
    result = _result("quality calibration", "calibration")
    judged.results.append(result)
    est = qm.estimate("ece", head.probs, head.targets, count=count, key="ece")
    target = float(policy["target-precision"])
    threshold, precision, coverage = qm.threshold_for_precision(head.probs, head.targets, target)
    result.figures.update(
        ece=_r(est.value),
        ece_ci=[_r(est.ci[0]), _r(est.ci[1])],
        n=est.n,
        bins=qm.reliability(head.probs, head.targets),
        target_precision=target,
        threshold=_r(threshold),
        precision=_r(precision),
        coverage=_r(coverage),
        max_ece=policy.get("max-ece"),
    )
    at = (
        f"confidence >= {threshold:.3f} reaches precision {precision:.3f} on {coverage:.0%} of examples"
        if threshold is not None
        else f"no confidence threshold reaches precision {target:g} (best {precision:.3f})"
    )
    result.summary = f"ECE {est.value:.3f} (95% CI {est.ci[0]:.3f}..{est.ci[1]:.3f}); {at}"
    max_ece = policy.get("max-ece")
    if max_ece is not None and est.value > float(max_ece):
        result.add(
            "error",
            f"expected calibration error {est.value:.3f} is above max-ece {float(max_ece):g} - calibrate the model "
            "(temperature scaling) or change max-ece in the base branch's [tool.ci-checks.quality]",
            reason="quality-threshold",
            value=est.value,
            threshold=max_ece,
        )
    min_coverage = policy.get("min-coverage")
    if threshold is None:
        result.add(
            "error" if min_coverage is not None else "warning",
            f"no confidence threshold reaches precision {target:g} on the evaluation set (best {precision:.3f}); "
            "lower target-precision or improve the model",
            reason="quality-threshold",
        )
    elif min_coverage is not None and coverage < float(min_coverage):
        result.add(
            "error",
            f"reaching precision {target:g} needs confidence >= {threshold:.3f}, which accepts {coverage:.1%} of "
            f"examples, below min-coverage {float(min_coverage):.1%}",
            reason="quality-threshold",
        )
    if base is not None and aligned is not None and aligned[0].size >= 2:
        h, b = aligned
        ch = qm.paired_change(
            "ece", base.probs[b], head.probs[h], head.targets[h], direction="lower", count=count, key="change:ece"
        )
        cell = {"base": _r(ch.base), "head": _r(ch.head), "delta": _r(ch.delta), "ci": [_r(ch.ci[0]), _r(ch.ci[1])]}
        result.figures["compared"] = cell
        judged.tests.append(
            Test(
                cell,
                result,
                "expected calibration error",
                ch.p_worse,
                ch.p_better,
                ch.delta > float(policy["abs-tol"]),
                fix="calibrate the model (temperature scaling) or explain the change in the pull request",
            )
        )


# ---------------------------------------------------------------- named suites of hard examples


def _suites(judged: Judged, head: Evaluation, base: Evaluation | None, tolerance: float) -> None:
    import numpy as np

    for name, run in head.suites.items():
        result = _result(f"quality suite {name}", "suite")
        judged.results.append(result)
        n, correct = len(run.ids), int(np.sum(run.correct))
        lost = int(np.sum(run.mined_correct & ~run.correct))
        result.figures.update(name=name, n=n, correct=correct, failure=run.failure, lost_since_mined=lost)
        result.summary = f"{correct} of {n} hard examples right" + (f" ({run.failure})" if run.failure else "")
        if lost:
            result.add(
                "warning",
                f"suite '{name}': {lost} example(s) the model got right when the suite was mined are now wrong",
                reason="quality-suite",
                suite=name,
            )
        if base is not None and name in base.suites and base.suites[name].ids == run.ids:
            other = base.suites[name]
            p_worse, p_better, only_head, only_base = qm.mcnemar(~other.correct.astype(bool), ~run.correct.astype(bool))
            cell = {"base": int(np.sum(other.correct)), "head": correct, "only_head": only_head, "only_base": only_base}
            result.figures["compared"] = cell
            material = (only_head - only_base) / max(1, n) > tolerance
            judged.tests.append(Test(cell, result, f"suite '{name}'", p_worse, p_better, material))


# ---------------------------------------------------------------- prediction flips


def _flips(head: Evaluation, base: Evaluation, aligned: Any, base_name: str) -> CheckResult:
    import numpy as np

    result = _result("quality flips", "flips")
    h, b = aligned
    flipped = head.predictions[h] != base.predictions[b]
    targets = head.targets[h]
    by_class = []
    for c in range(head.num_classes):
        of = targets == c
        if of.any():
            by_class.append({"class": c, "flips": int(np.sum(flipped & of)), "n": int(np.sum(of))})
    by_class.sort(key=lambda r: (-r["flips"], r["class"]))
    fixed = int(np.sum(flipped & (head.predictions[h] == targets)))
    broke = int(np.sum(flipped & (base.predictions[b] == targets)))
    rate = float(np.mean(flipped)) if h.size else 0.0
    result.figures.update(
        n=int(h.size),
        flips=int(np.sum(flipped)),
        rate=_r(rate),
        fixed=fixed,
        broken=broke,
        by_class=by_class[:5],
        base_examples=len(base.ids),
        head_examples=len(head.ids),
    )
    top = ", ".join(f"class {r['class']} ({r['flips']})" for r in by_class[:3] if r["flips"])
    result.summary = (
        f"{int(np.sum(flipped))} of {h.size} predictions differ from {base_name} ({rate:.1%}): {broke} newly wrong, "
        f"{fixed} newly right" + (f"; most in {top}" if top else "")
    )
    if h.size < len(head.ids):
        result.add(
            "notice",
            f"compared on the {h.size} examples both sides evaluated ({len(head.ids)} here, {len(base.ids)} on "
            f"{base_name})",
            reason="quality-coverage",
        )
    return result


# ---------------------------------------------------------------- verdicts


def _verdicts(judged: Judged, policy: Mapping[str, Any], base_name: str) -> None:
    tests = judged.tests
    alpha = float(policy["alpha"])
    for t, p in zip(tests, holm([t.p_worse for t in tests])):
        t.p_gate = p
    two = [min(1.0, 2.0 * min(t.p_worse, t.p_better)) for t in tests]
    for t, p in zip(tests, benjamini_hochberg(two)):
        t.p_flag = p
    gate = policy["fail-on"] != "never"
    for t in tests:
        t.row["p_worse"] = _r(t.p_worse, 6)
        t.row["p_adjusted"] = _r(t.p_gate, 6)
        if t.p_gate < alpha and t.material:
            t.row["verdict"] = "regressed"
            t.result.add(
                "error" if gate else "warning",
                f"{t.what} regressed against {base_name} ({_describe(t.row)}; Holm-adjusted p={t.p_gate:.3g}) - "
                + t.fix,
                reason="quality-regressed",
                p_adjusted=t.p_gate,
            )
        elif t.p_flag < alpha and t.p_better < t.p_worse:
            t.row["verdict"] = "improved"
        elif t.p_flag < alpha and t.material:
            t.row["verdict"] = "changed"  # worse beyond the tolerance, but not after Holm: flagged, not gating
        else:
            t.row["verdict"] = "within-noise" if t.row.get("delta") else "unchanged"


def _describe(row: Mapping[str, Any]) -> str:
    if "base" in row and "head" in row and isinstance(row.get("base"), float):
        return f"{row['base']:.4g} -> {row['head']:.4g}"
    if "only_head" in row:
        return f"{row['only_head']} case(s) fail only here, {row['only_base']} only on the base"
    return f"change {row.get('delta')}"
