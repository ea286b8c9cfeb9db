"""Drift of a dataset against the base: per feature a two-sample test (KS for numbers, chi-square for categories)
and the population stability index; the null rate, the class balance, the categories added or removed, the size.

A feature drifts only when its change is both significant (Holm-corrected across the dataset's features at alpha)
and large (PSI at or above the threshold, or a null rate or class share moving by more than its threshold): with
millions of rows every tiny change is significant, and with a few hundred a large one may be noise. The verdicts
are those of the metric comparison: changed (beyond the noise), within-noise, unchanged, new, missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ci_checks.compare.stats import holm
from ci_checks.data import twosample
from ci_checks.results import CheckResult, Kind, Verdict


def _shares(table: Mapping[str, Any]) -> dict[str, float]:
    top = {str(k): float(v) for k, v in (table.get("top") or {}).items()}
    if table.get("other"):
        top["(other)"] = float(table["other"])
    return top


def _feature(name: str, base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> dict[str, Any]:
    """The raw comparison of one feature (no verdict yet)."""
    out: dict[str, Any] = {"feature": name}
    if base is None or head is None:
        out["verdict"] = (Verdict.NEW if base is None else Verdict.MISSING).value
        out["type"] = (head or base or {}).get("type")
        return out
    kind = head.get("type")
    out["type"] = kind
    if kind != base.get("type"):
        out.update(verdict=Verdict.CHANGED.value, note=f"type {base.get('type')} -> {kind}", p_value=0.0, psi=None)
        return out
    nb, nh = int(base.get("count") or 0), int(head.get("count") or 0)
    out["null_rate"] = [base.get("null_rate", 0.0), head.get("null_rate", 0.0)]
    out["null_p"] = twosample.two_proportions(int(base.get("nulls") or 0), nb, int(head.get("nulls") or 0), nh)
    if kind == "numeric":
        out["mean"] = [base.get("mean"), head.get("mean")]
        out["std"] = [base.get("std"), head.get("std")]
        bq, hq = base.get("quantiles"), head.get("quantiles")
        if bq and hq:
            d, p = twosample.ks_sketch(bq, hq, int(base.get("sample") or nb), int(head.get("sample") or nh))
            out.update(test="ks", statistic=d, p_value=p, psi=twosample.psi_numeric(bq, hq))
            out["quantiles"] = [[bq[i] for i in (5, 25, 50, 75, 95)], [hq[i] for i in (5, 25, 50, 75, 95)]]
        else:  # no finite value on a side: only the null rate can be compared
            out.update(test=None, p_value=1.0, psi=None)
    elif kind == "categorical":
        b, h = _shares(base), _shares(head)
        stat, p, df = twosample.chi2_counts(b, h)
        keys = sorted(set(b) | set(h))
        tb, th = sum(b.values()) or 1.0, sum(h.values()) or 1.0
        pb = np.array([b.get(k, 0.0) / tb for k in keys])
        ph = np.array([h.get(k, 0.0) / th for k in keys])
        out.update(test="chi-square", statistic=stat, p_value=p, df=df, psi=twosample.psi(pb, ph) if keys else 0.0)
        out["added"] = sorted(k for k in h if k not in b and k != "(other)")[:10]
        out["removed"] = sorted(k for k in b if k not in h and k != "(other)")[:10]
        out["max_share_change"] = float(np.max(np.abs(pb - ph))) if keys else 0.0
        out["shares"] = [
            {k: round(float(v), 6) for k, v in zip(keys, pb)},
            {k: round(float(v), 6) for k, v in zip(keys, ph)},
        ]
    return out


def compare(
    name: str, base: Mapping[str, Any], head: Mapping[str, Any], settings: Mapping[str, Any], *, base_label: str
) -> CheckResult:
    """The drift check of one dataset: base snapshot vs head snapshot, judged by settings (the base's policy)."""
    psi_limit = float(settings.get("psi") or 0.2)
    alpha = float(settings.get("alpha") or 0.01)
    null_limit = float(settings.get("null-rate") or 0.02)
    share_limit = float(settings.get("class-share") or 0.05)
    severity = "error" if settings.get("fail-on", "drift") == "drift" else "warning"
    bcols, hcols = base.get("columns") or {}, head.get("columns") or {}
    label = head.get("label") or base.get("label")
    features = [
        _feature(str(k), bcols.get(k), hcols.get(k))
        for k in dict.fromkeys([*bcols, *hcols])
        if (bcols.get(k) or hcols.get(k) or {}).get("type") != "skipped"
    ]
    # One family per dataset: the distribution tests and the null-rate tests of every feature.
    tested = [f for f in features if "p_value" in f and "verdict" not in f]
    p_values = [float(f["p_value"]) for f in tested] + [float(f["null_p"]) for f in tested]
    adjusted = holm(p_values) if p_values else []
    for i, f in enumerate(tested):
        f["p_adjusted"], f["null_p_adjusted"] = adjusted[i], adjusted[len(tested) + i]
        significant = f["p_adjusted"] <= alpha
        large = f.get("psi") is not None and f["psi"] >= psi_limit
        reasons = []
        if significant and large:
            reasons.append(f"PSI {f['psi']:.3f} >= {psi_limit:g}, {f['test']} p={f['p_adjusted']:.2g}")
        if f["feature"] == label and significant and f.get("max_share_change", 0.0) >= share_limit:
            reasons.append(f"class share moved by {f['max_share_change']:.3f} >= {share_limit:g}")
        rise = f["null_rate"][1] - f["null_rate"][0]
        if f["null_p_adjusted"] <= alpha and rise >= null_limit:
            reasons.append(f"null rate {f['null_rate'][0]:.3f} -> {f['null_rate'][1]:.3f}")
        if f.get("type") == "categorical" and (f.get("added") or f.get("removed")) and large:
            reasons.append(_categories(f))
        if reasons:
            f["verdict"], f["why"] = Verdict.CHANGED.value, "; ".join(dict.fromkeys(reasons))
        elif significant or (f.get("psi") or 0.0) >= psi_limit / 2 or f.get("added") or f.get("removed"):
            f["verdict"] = Verdict.WITHIN_NOISE.value
        else:
            f["verdict"] = Verdict.UNCHANGED.value
    rows_b, rows_h = int(base.get("rows") or 0), int(head.get("rows") or 0)
    relative = (rows_h - rows_b) / rows_b if rows_b else None
    result = CheckResult(
        f"drift: {name}",
        figures={
            "kind": Kind.DATA.value,
            "role": "drift",
            "dataset": name,
            "base": base_label,
            "rows": [rows_b, rows_h],
            "size_change": relative,
            "label": label,
            "features": features,
            "policy": {
                k: settings.get(k) for k in ("psi", "alpha", "null-rate", "class-share", "size-change", "fail-on")
            },
        },
    )
    changed = [f for f in features if f["verdict"] in (Verdict.CHANGED.value, Verdict.MISSING.value)]
    for f in changed:
        what = "the class balance" if f["feature"] == label else f"feature {f['feature']!r}"
        why = f.get("why") or ("gone from the data" if f["verdict"] == Verdict.MISSING.value else f.get("note", ""))
        result.add(
            severity, f"{name}: {what} drifted against {base_label} ({why})", reason="drift", feature=f["feature"]
        )
    new = [f["feature"] for f in features if f["verdict"] == Verdict.NEW.value]
    if new:
        result.add("notice", f"{name}: new feature(s) {', '.join(new[:5])}", reason="drift-new")
    limit = float(settings.get("size-change") or 0.5)
    if relative is not None and abs(relative) >= limit:
        result.add(
            "warning",
            f"{name}: {rows_h:,} rows, {relative:+.0%} against {base_label}'s {rows_b:,} (size-change = {limit:g})",
            reason="size",
        )
    size = f"{rows_h:,} rows ({relative:+.1%})" if relative is not None else f"{rows_h:,} rows"
    result.summary = (
        f"{len(changed)} of {len(features)} feature(s) drifted; {size}"
        if changed
        else f"no drift in {len(features)} feature(s); {size}"
    )
    return result


def _categories(f: Mapping[str, Any]) -> str:
    parts = []
    if f.get("added"):
        parts.append("added " + ", ".join(map(str, f["added"][:3])))
    if f.get("removed"):
        parts.append("removed " + ", ".join(map(str, f["removed"][:3])))
    return "categories " + "; ".join(parts)
