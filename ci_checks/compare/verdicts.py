"""One result per metric and per curve: the verdict, its figures, and a message that says what to do."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ci_checks.compare.files import Curve
from ci_checks.compare.gate import Assessment
from ci_checks.compare.policy import Policy, policy_line
from ci_checks.compare.stats import mean
from ci_checks.results import Kind, Verdict

if TYPE_CHECKING:
    from ci_checks.results import CheckResult

PER_CLASS_TOML, HIGHER_TOML = '"per-class"', '"higher"'


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def metric_result(a: Assessment, *, fail_on: str, label: str, correction: str, first_run: bool) -> CheckResult:
    """The result of one assessed metric (after gate.correct()): figures, summary and findings with a reason."""
    from ci_checks.results import CheckResult

    name, base, head, policy = a.name, a.base, a.head, a.policy
    verdict = a.verdict
    assert verdict is not None, "gate.correct() sets every verdict"
    result = CheckResult(name)
    figures: dict[str, Any] = {
        "kind": Kind.METRIC.value,
        "verdict": verdict.value,
        "base": None,
        "head": None,
        "base_samples": list(base.samples) if base is not None and base.invalid is None else [],
        "head_samples": list(head.samples) if head is not None and head.invalid is None else [],
        "delta": None,
        "relative": None,
        "direction": policy.direction,
        "direction_guessed": policy.direction_guessed,
        "required": policy.required,
        "declared": policy.declared,
        "gating": a.gating,
        "values": policy.values,
        "test": "tolerance",
        "p_value": None,
        "p_adjusted": None,
        "correction": None,
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
    # The policy line to suggest names what a policy can match: a per-class metric's parent, not "f1[3]".
    key = (
        re.sub(r"\[\d+\]$", "", name.partition(":")[2] or name)
        if policy.values == "per-class"
        else (name.partition(":")[2] or name)
    )

    def fail(kind: Verdict) -> bool:
        """Whether a metric of this kind fails the run under fail-on ("any": every metric, gating or not)."""
        if fail_on in ("never", "any"):
            return fail_on == "any"
        if not a.gating:
            return False
        return kind in (Verdict.REGRESSED, Verdict.INVALID) or (kind is Verdict.MISSING and fail_on == "missing")

    if verdict is Verdict.MISSING:
        assert base is not None, "a metric is on at least one side"
        was = _fmt(figures["base"]) if figures["base"] is not None else str(base.invalid)
        result.summary = f"{was} -> missing"
        result.add(
            "error" if fail(Verdict.MISSING) else "warning",
            f"{name} is missing from the working tree (was {was} on {label}); rerun the step that writes "
            f"{base.file}, or set required = false under [tool.ci-checks.metrics] if it was removed on purpose",
            reason="missing",
            gating=a.gating,
            was=figures["base"],
        )
    elif verdict is Verdict.SKIPPED:
        result.summary = "a list of lists: not compared"
        result.add(
            "notice",
            f"{name} is a list of lists (one row of per-class values per seed?), so it was not compared; to compare "
            f"it class by class, add {policy_line(key, 'values', PER_CLASS_TOML)}",
            reason="skipped",
        )
    elif head is not None and head.invalid is not None:
        _invalid_head(result, a, fail(Verdict.INVALID), label)
    elif verdict is Verdict.NEW:
        result.summary = f"{_fmt(figures['head'])}{seeds} (new" + ("; no baseline yet)" if first_run else ")")
    elif base is not None and base.invalid is not None:
        result.summary = f"{base.invalid} on {label} -> {_fmt(figures['head'])}{seeds}"
    else:
        _compared(result, a, fail(Verdict.REGRESSED), label, correction, seeds, key)
    diverged = a.diverged
    if diverged is not None:
        side, found = diverged
        samples = figures[f"{side}_samples"]
        where = "the working tree" if side == "head" else label
        shift = (found.value - found.center) / len(samples)
        result.add(
            "warning",
            f"{name}: seed {found.index + 1} of {len(samples)} on {where} is {found.value:.4g}, "
            f"{abs(found.value - found.center) / found.scale if found.scale else math.inf:.1f} standard deviations "
            f"from the mean of the others ({found.center:.4g}; p={a.p_outlier:.2g} across metrics): a diverged or "
            f"broken run? It moves the mean by {shift:+.3g} and widens the noise the test sees; rerun that seed, or "
            "find why it diverged",
            reason="diverged",
            side=side,
            index=found.index,
            value=found.value,
        )
        figures["diverged"] = {"side": side, "index": found.index, "value": found.value, "p_adjusted": a.p_outlier}
    return result


def _invalid_head(result: CheckResult, a: Assessment, fails: bool, label: str) -> None:
    """A value in the working tree that is not a number (NaN, a string, null, an empty list ...)."""
    name, base, head, policy = a.name, a.base, a.head, a.policy
    assert head is not None and head.invalid is not None
    figures = result.figures
    prior = _fmt(figures["base"]) if figures["base"] is not None else None
    both = base is not None and base.invalid is not None
    result.summary = f"{prior or (base.invalid if base else '-')} -> {head.invalid}, invalid"
    if both and not policy.declared:
        return  # unusable on the base as well (a label such as a model name): nothing new on every pull request
    why = (
        "training or evaluation likely diverged, or the metric divided by zero"
        if head.nonfinite
        else "write a number (or a list of numbers, one per seed), or move it out of the metrics file"
    )
    # A declared metric must be a number; one that was a number on the base and is not any more is broken.
    error = fails and (policy.declared or prior is not None or a.gating and head.nonfinite)
    message = f"{name} is {head.invalid} in the working tree"
    if prior:
        message += f" (was {prior} on {label})"
    elif both:
        message += f" (and {base.invalid if base else ''} on {label})"
    rest = head.valid_samples
    if rest and figures["base_samples"]:
        message += (
            f"; its other {len(rest)} value(s) average {_fmt(mean(rest))} against {_fmt(figures['base'])} on "
            f"{label} ({_pct((mean(rest) - figures['base']) / abs(figures['base']) if figures['base'] else None)})"
        )
    result.add(
        "error" if error else "warning",
        f"{message}: not a usable metric; {why}",
        reason="nonfinite" if head.nonfinite else "invalid",
        gating=a.gating,
    )


def _compared(
    result: CheckResult, a: Assessment, fails: bool, label: str, correction: str, seeds: str, key: str
) -> None:
    """A metric valid on both sides: its verdict after the correction, and what to do about it."""
    name, policy, measured = a.name, a.policy, a.measured
    assert measured is not None and a.verdict is not None
    verdict, figures = a.verdict, result.figures
    for k in ("delta", "relative", "test", "p_value", "ci", "rel_tol"):
        figures[k] = measured[k]
    if measured["p_two"] is not None:
        figures["p_adjusted"] = a.p_adjusted
        figures["correction"] = "none" if correction == "none" else a.adjusted_by
    if measured["zero_variance"]:
        figures["zero_variance"] = True
    b, h = _fmt_pair(measured["base"], measured["head"])
    pct = _pct(measured["relative"]) if verdict is not Verdict.UNCHANGED else ""
    change = f" ({pct}{', ' if pct and seeds else ''}{seeds.strip(' ()')})" if pct or seeds else ""
    evidence = _evidence(measured, figures, policy)
    shown = verdict.value
    if verdict is Verdict.REGRESSED and not a.gating:
        shown = "regressed (report-only)"
    elif verdict is Verdict.CHANGED and policy.direction == "unknown":
        shown = "changed (direction unknown)"
    result.summary = f"{b} -> {h}{change}, {shown}" + (f" ({evidence})" if evidence else "")
    guessed = (
        f"; the direction was guessed from the name ({policy.direction} is better): confirm it with "
        f"{policy_line(key, 'direction', toml_string(policy.direction))}"
        if policy.direction_guessed
        else ""
    )
    if verdict is Verdict.REGRESSED:
        why = f"worse by {abs(measured['delta']):.3g}"
        if measured["tolerance"] > 0:
            why += f", beyond the tolerance {measured['tolerance']:.3g}"
        if measured["test"] != "tolerance":
            why += f", and significant ({_significance(measured, figures, policy)})"
        elif measured["zero_variance"]:
            why += " (no seed-to-seed variance on either side: the tolerance decides)"
        if a.gating:
            todo = (
                "fix the regression, or if it is intended loosen abs-tol/rel-tol or set required = false under "
                "[tool.ci-checks.metrics] (in the base branch: this pull request's policy applies after merge)"
            )
        else:
            todo = (
                f"report-only: {name} does not gate this pull request; to gate on it, add "
                f"{policy_line(key, 'required', 'true')}"
            )
        result.add(
            "error" if fails else "warning",
            f"{name} regressed: {b} -> {h}{change} against {label}: {why}{guessed}; {todo}",
            reason="regressed" if a.gating else "regressed-report-only",
            gating=a.gating,
            delta=measured["delta"],
            tolerance=measured["tolerance"],
            p_value=measured["p_value"],
            p_adjusted=figures["p_adjusted"],
        )
    elif verdict is Verdict.CHANGED and policy.direction == "unknown" and policy.required:
        result.add(
            "warning",
            f"{name} changed: {b} -> {h}{change} against {label}, beyond the noise, but no word of its name says "
            f"which way is better, so it is neither a regression nor an improvement; add "
            f"{policy_line(key, 'direction', HIGHER_TOML)} (or \"lower\"), or required = false to only show its "
            "changes",
            reason="direction-unknown",
            delta=measured["delta"],
        )


def _significance(measured: Mapping[str, Any], figures: Mapping[str, Any], policy: Policy) -> str:
    p, adjusted = measured["p_value"], figures.get("p_adjusted")
    if measured["test"] == "welch":
        text = f"p={p:.2g}, Welch's t-test"
    else:
        lo, hi = measured["ci"]
        text = f"{100 - 200 * policy.alpha:g}% bootstrap interval [{lo:.3g}, {hi:.3g}], p={p:.2g}"
    if adjusted is not None and figures.get("correction") != "none":
        method = "Holm" if figures.get("correction") == "holm" else "Benjamini-Hochberg"
        text += f"; {adjusted:.2g} after {method} across the metrics < alpha {policy.alpha:g}"
    else:
        text += f" < alpha {policy.alpha:g}"
    return text


def _seeds(base: Sequence[float], head: Sequence[float]) -> str:
    if len(base) > 1 or len(head) > 1:
        return f" ({len(base)} vs {len(head)} samples)" if base else f" ({len(head)} samples)"
    return ""


def _evidence(measured: Mapping[str, Any], figures: Mapping[str, Any], policy: Policy) -> str:
    if measured["delta"] == 0:
        return ""
    adjusted = figures.get("p_adjusted")
    adj = f", adj. {adjusted:.2g}" if adjusted is not None and figures.get("correction") != "none" else ""
    if measured["test"] == "welch":
        return f"p={measured['p_value']:.2g}{adj}"
    if measured["test"] == "bootstrap":
        lo, hi = measured["ci"]
        return f"{100 - 200 * policy.alpha:g}% CI [{lo:+.3g}, {hi:+.3g}]{adj}"
    flat = ", no seed-to-seed variance" if measured["zero_variance"] else ""
    return f"tolerance {measured['tolerance']:.3g}{flat}"


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
