"""Error control per pull request: the corrections against scipy, which metrics gate, and the verdicts they give.

The simulations are seeded and small (a few thousand Welch tests): they prove the control, the benchmark
(benchmarks/metric_noise) measures it with more trials.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from ci_checks.compare.files import Metric
from ci_checks.compare.gate import Assessment, assess, choose_gating, correct
from ci_checks.compare.policy import policy_for
from ci_checks.compare.stats import benjamini_hochberg, holm, outlier, welch
from ci_checks.compare.verdicts import metric_result
from ci_checks.results import Verdict

scipy_stats = pytest.importorskip("scipy.stats")

SIGMA = 0.005


# ---------------------------------------------------------------- the statistics, against scipy


def test_benjamini_hochberg_equals_scipy() -> None:
    rng = random.Random(3)
    for m in (1, 2, 7, 50):
        ps = [rng.random() ** 3 for _ in range(m)] + [0.5] * (m // 3)  # ties too
        assert benjamini_hochberg(ps) == pytest.approx(list(scipy_stats.false_discovery_control(ps)), abs=1e-12)


def test_holm_equals_its_closed_testing_definition() -> None:
    """Holm rejects H_i at alpha iff every intersection containing i is rejected by Bonferroni (scipy has no Holm)."""
    rng = random.Random(4)
    for _ in range(40):
        m = rng.randint(1, 6)
        ps = [rng.random() ** 4 for _ in range(m)]
        adjusted = holm(ps)
        for alpha in (0.01, 0.05, 0.2):
            for i in range(m):
                closed = all(
                    min(ps[j] for j in subset) <= alpha / len(subset)
                    for k in range(1, m + 1)
                    for subset in itertools.combinations(range(m), k)
                    if i in subset
                )
                assert (adjusted[i] <= alpha) == closed, (ps, alpha, i)


def test_welch_p_values_equal_scipy() -> None:
    rng = random.Random(5)
    for _ in range(25):
        base = [rng.gauss(0.9, 0.01) for _ in range(rng.randint(2, 8))]
        head = [rng.gauss(0.9 + rng.choice((0, 0.01, 0.05)), 0.02) for _ in range(rng.randint(2, 8))]
        ours = welch(base, head)
        less = scipy_stats.ttest_ind(head, base, equal_var=False, alternative="less").pvalue
        greater = scipy_stats.ttest_ind(head, base, equal_var=False, alternative="greater").pvalue
        assert (ours.p_less, ours.p_greater) == pytest.approx((less, greater), rel=1e-7, abs=1e-14)


def test_outlier_p_value_is_the_leave_one_out_t_test() -> None:
    side, other = [0.90, 0.91, 0.89, 0.905, 0.80], [0.9, 0.902, 0.898, 0.901]
    found = outlier(side, other)
    assert found is not None and found.index == 4 and found.value == 0.80
    rest = side[:4]
    center = sum(rest) / 4
    ss = sum((v - center) ** 2 for v in rest) + sum((v - sum(other) / 4) ** 2 for v in other)
    df = 3 + 3
    t = (center - 0.80) / ((ss / df) ** 0.5 * (1 + 1 / 4) ** 0.5)
    assert found.p_value == pytest.approx(min(1.0, 5 * 2 * scipy_stats.t.sf(t, df)), rel=1e-9)
    assert outlier([1.0, 2.0], other) is None  # with two samples either could be the odd one


# ---------------------------------------------------------------- one pull request, many metrics


def pull_request(
    rng: random.Random,
    n: int,
    policies: dict[str, Any] | None = None,
    *,
    shift: dict[int, float] | None = None,
    seeds: int = 5,
) -> list[Assessment]:
    out = []
    for i in range(n):
        name = f"m.json:task{i}.accuracy"
        base = [rng.gauss(0.9, SIGMA) for _ in range(seeds)]
        head = [rng.gauss(0.9 - (shift or {}).get(i, 0.0) * SIGMA, SIGMA) for _ in range(seeds)]
        policy = policy_for(name, policies or {})
        out.append(assess(name, Metric(name, "m.json", base), Metric(name, "m.json", head), policy, first_run=False))
    return out


def fails(assessments: list[Assessment], gate: str = "auto", correction: str = "holm") -> bool:
    """What compare's exit code says: a gating metric regressed (metric_result makes that an error)."""
    choose_gating(assessments, gate)
    correct(assessments, correction)
    return any(a.gating and a.verdict is Verdict.REGRESSED for a in assessments)


def test_a_pull_request_with_no_real_change_fails_at_most_alpha_of_the_time_with_many_metrics() -> None:
    rng = random.Random(11)
    trials, n = 60, 20
    corrected = sum(fails(pull_request(rng, n)) for _ in range(trials))
    assert corrected <= 0.05 * trials + 2 * (0.05 * 0.95 * trials) ** 0.5  # at most 5%, within two standard errors
    uncorrected = sum(fails(pull_request(rng, n), correction="none") for _ in range(20))
    assert uncorrected >= 8  # 1 - 0.95**20 = 64%: each metric alone at 5%, as before


def test_a_declared_metric_keeps_the_power_of_a_lone_one() -> None:
    rng = random.Random(12)
    trials, target = 30, "m.json:task0.accuracy"
    lone = sum(fails(pull_request(rng, 1, shift={0: 2.0})) for _ in range(trials))
    declared = sum(fails(pull_request(rng, 20, {target: {"required": True}}, shift={0: 2.0})) for _ in range(trials))
    everything = sum(fails(pull_request(rng, 20, shift={0: 2.0})) for _ in range(trials))
    assert lone >= 20 and declared >= 20  # about 88% each
    assert everything < declared  # the price of letting 20 undeclared metrics gate together


def test_gating_families() -> None:
    rng = random.Random(1)
    policies = {"task1.accuracy": {"required": True}, "task2.accuracy": {"required": False}}
    prs = pull_request(rng, 4, policies)
    assert choose_gating(prs, "auto") == "declared"
    assert [a.gating for a in prs] == [False, True, False, False]
    assert choose_gating(prs, "all") == "all" and [a.gating for a in prs] == [True, True, False, True]
    plain = pull_request(rng, 3)
    assert choose_gating(plain, "auto") == "all" and all(a.gating for a in plain)
    assert choose_gating(plain, "declared") == "declared" and not any(a.gating for a in plain)


def test_a_report_only_regression_warns_and_never_fails() -> None:
    rng = random.Random(2)
    prs = pull_request(rng, 3, {"task1.accuracy": {"required": True}}, shift={0: 12.0})
    choose_gating(prs, "auto")
    correct(prs, "holm")
    assert prs[0].verdict is Verdict.REGRESSED and not prs[0].gating
    result = metric_result(prs[0], fail_on="regressed", label="main", correction="holm", first_run=False)
    (finding,) = result.findings
    assert finding.severity == "warning" and finding.details["reason"] == "regressed-report-only"
    assert '[tool.ci-checks.metrics."task0.accuracy"] required = true' in finding.message
    assert "report-only" in result.summary
    strict = metric_result(prs[0], fail_on="any", label="main", correction="holm", first_run=False)
    assert strict.findings[0].severity == "error"


# ---------------------------------------------------------------- verdicts of one metric


def one(name: str, base: Any, head: Any, policies: dict[str, Any] | None = None) -> tuple[Assessment, Any]:
    b, h = Metric(name, "m.json"), Metric(name, "m.json")
    b.add(base)
    h.add(head)
    a = assess(name, b, h, policy_for(name, policies or {}), first_run=False)
    choose_gating([a], "auto")
    correct([a], "holm")
    return a, metric_result(a, fail_on="regressed", label="main", correction="holm", first_run=False)


@pytest.mark.parametrize(
    ("name", "head"),
    [
        pytest.param("m.json:wer", [0.15, 0.151, 0.149, 0.15, 0.152], id="wer-rises"),
        pytest.param("m.json:eval_ms", [15.0, 15.1, 14.9, 15.0, 15.2], id="ms-rises"),
    ],
)
def test_lower_is_better_names_regress_when_they_rise(name: str, head: list[float]) -> None:
    base = [x / 1.5 for x in head]
    a, result = one(name, base, head)
    assert a.verdict is Verdict.REGRESSED and result.status == "fail"
    assert "guessed from the name (lower is better)" in result.findings[0].message


def test_an_unknown_direction_is_changed_never_improved() -> None:
    a, result = one("m.json:num_widgets", [1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.1, 1.9, 2.0, 2.05])
    assert a.verdict is Verdict.CHANGED and result.figures["direction"] == "unknown"
    (finding,) = result.findings
    assert finding.severity == "warning" and finding.details["reason"] == "direction-unknown"
    assert '[tool.ci-checks.metrics."num_widgets"] direction = "higher"' in finding.message
    quiet, result = one("m.json:num_widgets", [1.0], [2.0], {"num_widgets": {"required": False}})
    assert quiet.verdict is Verdict.CHANGED and result.findings == []  # not required: its changes are only shown


def test_zero_variance_falls_back_to_the_tolerance() -> None:
    a, result = one("m.json:accuracy", [0.9] * 5, [0.9 + 1e-9] * 5)
    assert a.verdict is Verdict.WITHIN_NOISE and result.status == "pass"
    assert result.figures["test"] == "tolerance" and result.figures["rel_tol"] == 0.01
    assert "no seed-to-seed variance" in result.summary
    a, result = one("m.json:accuracy", [0.9] * 5, [0.8] * 5)
    assert a.verdict is Verdict.REGRESSED and "the tolerance decides" in result.findings[0].message


def test_a_diverged_seed_is_flagged_and_a_clean_run_is_not() -> None:
    base = [0.901, 0.899, 0.9, 0.902, 0.898]
    a, result = one("m.json:accuracy", base, [0.9, 0.901, 0.899, 0.85, 0.9])  # 50 sigma
    flags = [f for f in result.findings if f.details.get("reason") == "diverged"]
    assert a.verdict is Verdict.WITHIN_NOISE and len(flags) == 1 and flags[0].severity == "warning"
    assert "seed 4 of 5 on the working tree is 0.85" in flags[0].message
    assert result.figures["diverged"]["index"] == 3
    clean, result = one("m.json:accuracy", base, [0.9, 0.901, 0.899, 0.897, 0.9])
    assert clean.diverged is None and result.findings == []


def test_an_invalid_seed_where_main_had_numbers_fails_and_says_what_the_others_show() -> None:
    a, result = one("m.json:accuracy", [0.9] * 5, [0.8, 0.8, "oops", 0.8, 0.8])
    assert a.verdict is Verdict.INVALID and result.status == "fail"
    (finding,) = result.findings
    assert finding.details["reason"] == "invalid"
    assert "its other 4 value(s) average 0.8 against 0.9 on main (-11.1%)" in finding.message


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("n/a", id="string"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param([], id="empty"),
    ],
)
def test_non_numbers_are_invalid_and_fail_a_declared_metric(value: Any) -> None:
    a, result = one("m.json:accuracy", 0.9, value, {"accuracy": {"required": True}})
    assert a.verdict is Verdict.INVALID and result.status == "fail"
    a, result = one("m.json:label", value, value, {"label": {"required": True}})
    assert result.status == "fail" and "on main" in result.findings[0].message  # declared: invalid on both fails too
    a, result = one("m.json:label", value, value)
    assert a.verdict is Verdict.INVALID and result.findings == []  # undeclared on both sides: a label, no news
