"""The per-metric policy ([tool.ci-checks.metrics]) and the verdict of one metric under it.

With at least two samples per side (seeds) the verdict comes from Welch's t-test or a bootstrap, and a regression
needs both significance and a change beyond the tolerance; with single values (or no seed-to-seed variance at all)
the tolerance decides alone. measure() computes the raw figures and judge() the verdict once the p-values are
corrected for the other metrics (ci_checks/compare/gate.py); decide() judges one metric alone.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ci_checks._errors import UserError
from ci_checks.compare import stats
from ci_checks.results import Verdict
from ci_checks.schema import DIRECTIONS, FAIL_ON, TESTS

__all__ = [
    "DIRECTIONS",
    "FAIL_ON",
    "TESTS",
    "Policy",
    "check_policies",
    "closest_metrics",
    "decide",
    "guess_direction",
    "judge",
    "matches",
    "measure",
    "policy_for",
    "policy_line",
    "words",
    "unmatched_any",
    "unmatched_message",
    "unmatched_optional",
]

DEFAULT_REL_TOL = 0.01
BOOTSTRAP_RESAMPLES = 2000
KNOWN_DIRECTIONS = ("higher", "lower")

# The direction vocabulary: a name's words (split at punctuation and camelCase) are looked up here. A name whose
# words point both ways (time_to_accuracy) or nowhere gets no direction: its changes are "changed", never improved.
LOWER_WORDS = frozenset(
    """loss losses error errors err wer cer ter nll perplexity ppl fid kid bpd bpc bpb kl kld kldiv divergence mae mse
    rmse mape smape msle rmsle huber time times seconds second secs sec ms msec us usec ns nsec minutes mins hours
    latency runtime duration elapsed walltime memory mem bytes kb mb gb tb kib mib gib tib vram rss footprint eer
    far frr fpr fnr fdr false miss misses misclassified cost regret brier ece mce distance dist hamming violations
    failures failed crashes""".split()
)
HIGHER_WORDS = frozenset(
    """accuracy accuracies acc f1 f05 f2 fscore precision recall auc auroc auprc roc ap map ndcg mrr hit hits hitrate
    iou miou dice jaccard bleu sacrebleu rouge rouge1 rouge2 rougel meteor chrf cider spice bertscore r2
    rsquared psnr ssim msssim snr sdr sisdr pesq stoi throughput fps qps rps speedup reward rewards return returns
    success winrate win wins pass exact em match correct tpr tnr specificity sensitivity kappa mcc pearson spearman
    kendall correlation corr coverage agreement elbo loglik likelihood""".split()
)
# Higher only when no other word says: "top1" alone is an accuracy, top1_error an error; f1_score is an F1,
# brier_score a Brier score (lower).
QUALIFIERS = frozenset("top1 top5 top3 top10 score scores".split())
RATE_UNITS = frozenset("s sec secs second seconds step steps iter iters iteration epoch min minute hour".split())
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
PER_CLASS = re.compile(r"per[_\-\s]?(class|label|category)|by[_\-]?(class|label)|class[_\-]?wise|confusion", re.I)


@dataclass(frozen=True)
class Policy:
    direction: str  # higher | lower (which is better) | unknown (no policy set it, no word of the name says)
    direction_guessed: bool
    abs_tol: float | None
    rel_tol: float | None
    required: bool  # False: never fails the pull request
    test: str
    alpha: float
    declared: bool = False  # a policy sets required = true for it: a gating metric by the user's word
    values: str = "seeds"  # a list of numbers: seeds, or one value per class
    values_guessed: bool = False  # per-class because the name says so


def words(name: str) -> list[str]:
    """The words of a metric's key: its alphanumeric runs, lowercased, and their camelCase parts."""
    key = name.partition(":")[2] or name
    found: list[str] = []
    for chunk in re.findall(r"[A-Za-z0-9]+", key):
        found.append(chunk.lower())
        parts = _CAMEL.findall(chunk)
        if len(parts) > 1:
            found.extend(p.lower() for p in parts)
    return found


def guess_direction(name: str) -> str:
    """higher or lower from the words of the key (only the key: not the file), else unknown."""
    found = words(name)
    for i, word in enumerate(found[:-1]):
        if word == "per" and found[i + 1] in RATE_UNITS:
            return "higher"  # a rate: samples_per_sec, tokens_per_s
    lower = any(w in LOWER_WORDS for w in found)
    higher = any(w in HIGHER_WORDS for w in found)
    if lower != higher:
        return "lower" if lower else "higher"
    if not lower and any(w in QUALIFIERS for w in found):
        return "higher"
    return "unknown"


def matches(name: str, pattern: str) -> int:
    """How specifically a policy key names a metric: 3 the full name, 2 the key, 1 a glob, 0 not at all."""
    key = name.partition(":")[2] or name
    if pattern == name:
        return 3
    if pattern == key:
        return 2
    if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(key, pattern):
        return 1
    return 0


def policy_for(name: str, policies: Mapping[str, Mapping[str, Any]]) -> Policy:
    """Merge every policy that names the metric, the most specific last (full name > key > longer glob)."""
    ranked = sorted(((matches(name, p), len(p), p) for p in policies), key=lambda r: (r[0], r[1]))
    merged: dict[str, Any] = {}
    for rank, _, pattern in ranked:
        if rank:
            merged.update(policies[pattern])
    direction = merged.get("direction")
    abs_tol, rel_tol = merged.get("abs-tol"), merged.get("rel-tol")
    values = merged.get("values")
    per_class_name = bool(PER_CLASS.search(name.partition(":")[2] or name))
    # No tolerance set: single values fall back to DEFAULT_REL_TOL in decide(); with seeds the test alone judges
    # noise (a 1% default there cut 2-sigma detection at 5 seeds from 88% to 62%: benchmarks/metric_noise).
    return Policy(
        direction=direction or guess_direction(name),
        direction_guessed=direction is None,
        abs_tol=abs_tol,
        rel_tol=rel_tol,
        required=merged.get("required", True) is not False,
        test=str(merged.get("test", "welch")),
        alpha=float(merged.get("alpha", 0.05)),
        declared=merged.get("required") is True,
        values=str(values or ("per-class" if per_class_name else "seeds")),
        values_guessed=values is None and per_class_name,
    )


def policy_line(name: str, key: str, value: str) -> str:
    """The TOML a user adds to set one key of one metric's policy (value: a TOML literal, e.g. '"lower"')."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'[tool.ci-checks.metrics."{quoted}"] {key} = {value}'


# ---------------------------------------------------------------- policies that name no metric


def closest_metrics(key: str, names: Sequence[str]) -> list[str]:
    keys = {n.partition(":")[2] or n: n for n in names}
    found = difflib.get_close_matches(key, list(names), n=3, cutoff=0.4)
    found += [keys[k] for k in difflib.get_close_matches(key, list(keys), n=3, cutoff=0.4)]
    return list(dict.fromkeys(found))[:3]


def unmatched_message(key: str, names: Sequence[str]) -> str:
    closest = closest_metrics(key, names)
    hint = f"closest: {', '.join(closest)}" if closest else f"metrics are named like '{names[0]}'"
    return (
        f"[tool.ci-checks.metrics] '{key}' names no metric on either side ({hint}); fix the name, "
        "or set required = false if the metric may be absent"
    )


def _unmatched(policies: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    return [p for p in policies if not any(matches(n, p) for n in names)]


def check_policies(policies: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> None:
    """Raise UserError for a required policy that names no metric (a typo in a key)."""
    for key in _unmatched(policies, names):
        if policies[key].get("required", True):
            raise UserError(unmatched_message(key, names))


def unmatched_any(policies: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """Every policy that names no metric (when there are metrics at all)."""
    return _unmatched(policies, names) if names else []


def unmatched_optional(policies: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """Policies with required = false that name no metric: warnings, not errors."""
    return [k for k in _unmatched(policies, names) if names and not policies[k].get("required", True)]


# ---------------------------------------------------------------- the verdict of one metric


def measure(base: Sequence[float], head: Sequence[float], policy: Policy, *, seed: int = 0) -> dict[str, Any]:
    """The figures of one metric present and valid on both sides: the change, the tolerance and the raw p-values.

    p_worse and p_better are one-sided (None without a known direction), p_two two-sided; all None when the
    tolerance alone decides (single values, or no seed-to-seed variance on either side).
    """
    b, h = stats.mean(base), stats.mean(head)
    delta = h - b
    relative = delta / abs(b) if b != 0 else None
    seeded = len(base) >= 2 and len(head) >= 2
    flat = seeded and _flat(base, b) and _flat(head, h)
    rel_tol = policy.rel_tol
    if policy.abs_tol is None and rel_tol is None and (not seeded or flat):
        rel_tol = DEFAULT_REL_TOL
    tol = max(policy.abs_tol or 0.0, (rel_tol or 0.0) * abs(b))
    test, p_value, ci = "tolerance", None, None
    p_worse = p_better = p_two = None
    if seeded and not flat:
        test = policy.test
        level = 1.0 - 2.0 * policy.alpha  # a two-sided interval that matches the one-sided test at alpha
        if test == "welch":
            result = stats.welch(base, head, level=level)
        else:
            result = stats.bootstrap(base, head, level=level, resamples=BOOTSTRAP_RESAMPLES, seed=seed)
        p_two = min(1.0, 2.0 * min(result.p_less, result.p_greater))
        if policy.direction in KNOWN_DIRECTIONS:
            higher = policy.direction == "higher"
            p_worse = result.p_less if higher else result.p_greater
            p_better = result.p_greater if higher else result.p_less
        smaller, larger = sorted((result.p_less, result.p_greater))
        p_value = smaller if delta != 0 else larger  # one-sided, in the direction of the change
        ci = [result.ci[0], result.ci[1]]
    return {
        "base": b,
        "head": h,
        "delta": delta,
        "relative": relative,
        "test": test,
        "p_value": p_value,
        "p_worse": p_worse,
        "p_better": p_better,
        "p_two": p_two,
        "ci": ci,
        "tolerance": tol,
        "rel_tol": rel_tol,
        "beyond": abs(delta) > tol,
        "zero_variance": flat,
    }


def _flat(samples: Sequence[float], center: float) -> bool:
    """No seed-to-seed variance beyond floating-point noise: nothing for a test to measure."""
    return math.sqrt(stats.variance(samples)) <= 1e-9 * abs(center)


def judge(measured: Mapping[str, Any], policy: Policy, *, worse: bool, better: bool, changed: bool) -> Verdict:
    """The verdict of measured figures, given which changes the (corrected) tests found significant.

    With the tolerance alone (no test) every change beyond the tolerance counts as significant.
    """
    delta, b = measured["delta"], measured["base"]
    if delta == 0 or abs(delta) <= 1e-12 * max(1.0, abs(b)):
        return Verdict.UNCHANGED
    tested = measured["p_two"] is not None
    if not measured["beyond"]:
        return Verdict.WITHIN_NOISE
    if policy.direction not in KNOWN_DIRECTIONS:
        return Verdict.CHANGED if changed or not tested else Verdict.WITHIN_NOISE
    sign = 1.0 if policy.direction == "higher" else -1.0
    if delta * sign < 0 and (worse or not tested):
        return Verdict.REGRESSED
    if delta * sign > 0 and (better or not tested):
        return Verdict.IMPROVED
    return Verdict.WITHIN_NOISE


def decide(base: Sequence[float], head: Sequence[float], policy: Policy, *, seed: int = 0) -> dict[str, Any]:
    """The verdict and figures of one metric judged alone (no correction for other metrics): measure() and judge()."""
    measured = measure(base, head, policy, seed=seed)
    alpha = policy.alpha

    def below(p: float | None) -> bool:
        return p is not None and p < alpha

    verdict = judge(
        measured,
        policy,
        worse=below(measured["p_worse"]),
        better=below(measured["p_better"]),
        changed=below(measured["p_two"]),
    )
    return {"verdict": verdict, **measured}
