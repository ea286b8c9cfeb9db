"""One result per metric and per curve: the verdict, its figures, and a message that says what to do."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ci_checks.compare.files import Curve, Metric
from ci_checks.compare.policy import Policy, decide
from ci_checks.compare.stats import mean
from ci_checks.results import Kind, Verdict

if TYPE_CHECKING:
    from ci_checks.results import CheckResult


def metric_result(
    name: str, base: Metric | None, head: Metric | None, policy: Policy, *, fail_on: str, label: str, first_run: bool
) -> CheckResult:
    from ci_checks.results import CheckResult

    result = CheckResult(name)
    figures: dict[str, Any] = {
        "kind": Kind.METRIC.value,
        "verdict": "",
        "base": None,
        "head": None,
        "base_samples": list(base.samples) if base is not None and base.invalid is None else [],
        "head_samples": list(head.samples) if head is not None and head.invalid is None else [],
        "delta": None,
        "relative": None,
        "direction": policy.direction,
        "direction_guessed": policy.direction_guessed,
        "required": policy.required,
        "test": "tolerance",
        "p_value": None,
        "ci": None,
        "abs_tol": policy.abs_tol,
        "rel_tol": policy.rel_tol,
    }
    result.figures = figures
    if figures["base_samples"]:
        figures["base"] = mean(figures["base_samples"])
    if figures["head_samples"]:
        figures["head"] = mean(figures["head_samples"])
    seeds = _seeds(figures["base_samples"], figures["head_samples"])
    guessed = (
        f"; direction guessed: {policy.direction} is better, set direction under [tool.ci-checks.metrics]"
        if policy.direction_guessed
        else ""
    )

    def fail(kind: Verdict) -> bool:
        """Whether a metric of this kind fails the run under fail-on ("invalid" only under fail-on any)."""
        if fail_on in ("never", "any"):
            return fail_on == "any"
        if kind is Verdict.REGRESSED:
            return policy.required
        return kind is Verdict.MISSING and fail_on == "missing" and policy.required

    if head is None:
        assert base is not None, "a metric is on at least one side"
        figures["verdict"] = Verdict.MISSING.value
        was = _fmt(figures["base"]) if figures["base"] is not None else str(base.invalid)
        result.summary = f"{was} -> missing"
        result.add(
            "error" if fail(Verdict.MISSING) else "warning",
            f"{name} is missing from the working tree (was {was} on {label}); rerun the step that writes "
            f"{base.file}, or set required = false under [tool.ci-checks.metrics] if it was removed on purpose",
            was=figures["base"],
        )
        return result
    if head.invalid is not None:
        figures["verdict"] = Verdict.INVALID.value
        prior = _fmt(figures["base"]) if figures["base"] is not None else None
        result.summary = f"{prior or (base.invalid if base else '-')} -> {head.invalid}, invalid"
        if base is not None and base.invalid is not None:
            return result  # as unusable on the base: nothing new to report on every pull request
        broke = head.nonfinite and prior is not None  # a number that went NaN: the run itself is broken
        why = (
            "training or evaluation likely diverged, or the metric divided by zero"
            if head.nonfinite
            else "write a number (or a list of numbers, one per seed), or move it out of the metrics file"
        )
        severity = "error" if fail(Verdict.INVALID) or (broke and fail(Verdict.REGRESSED)) else "warning"
        result.add(
            severity,
            f"{name} is {head.invalid} in the working tree"
            + (f" (was {prior} on {label})" if prior else "")
            + f": not a usable metric; {why}",
            reason=head.invalid,
        )
        return result
    if base is None or first_run:
        figures["verdict"] = Verdict.NEW.value
        result.summary = f"{_fmt(figures['head'])}{seeds} (new" + ("; no baseline yet)" if first_run else ")")
        return result
    if base.invalid is not None:
        figures["verdict"] = Verdict.INVALID.value
        result.summary = f"{base.invalid} on {label} -> {_fmt(figures['head'])}{seeds}"
        return result

    decided = decide(base.samples, head.samples, policy, seed=zlib.crc32(name.encode()))
    verdict: Verdict = decided["verdict"]
    for key in ("delta", "relative", "test", "p_value", "ci", "rel_tol"):
        figures[key] = decided[key]
    figures["verdict"] = verdict.value
    b, h = _fmt_pair(decided["base"], decided["head"])
    pct = _pct(decided["relative"]) if verdict is not Verdict.UNCHANGED else ""
    change = f" ({pct}{', ' if pct and seeds else ''}{seeds.strip(' ()')})" if pct or seeds else ""
    evidence = _evidence(decided, policy)
    result.summary = f"{b} -> {h}{change}, {verdict.value}" + (f" ({evidence})" if evidence else "")
    if verdict is Verdict.REGRESSED:
        why = f"worse by {abs(decided['delta']):.3g}, beyond the tolerance {decided['tolerance']:.3g}"
        if decided["test"] == "welch":
            why += f", and significant (p={decided['p_value']:.2g} < alpha {policy.alpha:g}, Welch's t-test)"
        elif decided["test"] == "bootstrap":
            lo, hi = decided["ci"]
            why += (
                f", and significant ({100 - 200 * policy.alpha:g}% bootstrap interval [{lo:.3g}, {hi:.3g}] excludes 0)"
            )
        result.add(
            "error" if fail(Verdict.REGRESSED) else "warning",
            f"{name} regressed: {b} -> {h}{change} against {label}: {why}{guessed}; fix the regression, or if "
            "it is intended loosen abs-tol/rel-tol or set required = false under [tool.ci-checks.metrics]",
            delta=decided["delta"],
            tolerance=decided["tolerance"],
            p_value=decided["p_value"],
        )
    return result


def _seeds(base: Sequence[float], head: Sequence[float]) -> str:
    if len(base) > 1 or len(head) > 1:
        return f" ({len(base)} vs {len(head)} samples)" if base else f" ({len(head)} samples)"
    return ""


def _evidence(decided: Mapping[str, Any], policy: Policy) -> str:
    if decided["verdict"] is Verdict.UNCHANGED:
        return ""
    if decided["test"] == "welch":
        return f"p={decided['p_value']:.2g}"
    if decided["test"] == "bootstrap":
        lo, hi = decided["ci"]
        return f"{100 - 200 * policy.alpha:g}% CI [{lo:+.3g}, {hi:+.3g}]"
    return f"tolerance {decided['tolerance']:.3g}"


def curve_result(
    path: str, head: Curve | None, base: Curve | None, base_series: Mapping[str, list[float]] | None
) -> CheckResult:
    from ci_checks.results import CheckResult

    x = (head or base or (None, {}))[0] or "step"
    series: dict[str, list[float]] = {}
    ys: list[str] = []
    for side, data in (("head", head), ("base", base)):
        if data is None:
            continue
        xname, columns = data
        for column, values in columns.items():
            series[f"{side}:{column}"] = values
            if column != xname and column not in ys:
                ys.append(column)
    if base is None and base_series:
        for column, values in base_series.items():
            series[f"base:{column}"] = list(values)
    result = CheckResult(f"curve {path}", figures={"kind": Kind.CURVE.value, "x": x, "y": ys}, series=series)
    parts = []
    for y in ys:
        h, b = series.get(f"head:{y}") or [], series.get(f"base:{y}") or []
        if h and b:
            parts.append(f"{y}: final {_fmt(h[-1])} vs {_fmt(b[-1])} ({len(h)} vs {len(b)} points)")
        elif h:
            parts.append(f"{y}: final {_fmt(h[-1])} ({len(h)} points, none on base)")
        elif b:
            parts.append(f"{y}: only on base ({len(b)} points)")
    result.summary = "; ".join(parts)
    return result


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers with enough digits to tell them apart (4 significant digits at least)."""
    for digits in range(4, 11):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if sa != sb or a == b:
            return sa, sb
    return sa, sb


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _pct(relative: float | None) -> str:
    if relative is None:
        return ""
    pct = relative * 100.0
    return f"{pct:+.1f}%" if abs(pct) >= 0.05 or pct == 0 else f"{pct:+.2g}%"
