"""judge() on per-example results: pairing by id, the policy's gate, and an identical model that changes nothing."""

from __future__ import annotations

import numpy as np

from ci_checks.config import validate_section
from ci_checks.quality.evaluate import BehaviourRun, Evaluation
from ci_checks.quality.suites import judge


def _evaluation(ids: range, *, wrong: set[int] = frozenset(), failing: set[int] = frozenset()) -> Evaluation:
    n = len(ids)
    targets = np.array([i % 3 for i in ids])
    probs = np.full((n, 3), 0.05)
    for k, i in enumerate(ids):
        probs[k, (targets[k] + (1 if i in wrong else 0)) % 3] = 0.9
    failed = np.array([i in failing for i in ids])
    inv = BehaviourRun("inv", "INV", failed, failed.astype(float), [str(i) for i in ids], tolerance=0.1)
    slices = {"even": np.array([i % 2 == 0 for i in ids])}
    losses = -np.log(probs[np.arange(n), targets])
    return Evaluation(probs, targets, losses, [str(i) for i in ids], slices, {"inv": inv}, metrics=("accuracy",))


def _policy(**overrides: object) -> dict:
    return {**validate_section("quality"), "bootstrap": 300, **overrides}


def test_an_identical_model_changes_nothing() -> None:
    base = _evaluation(range(200), wrong={3, 8}, failing={5})
    results = judge(base, base, _policy(), base_name="main")
    assert all(r.status == "pass" for r in results), [f.message for r in results for f in r.findings]
    slices = next(r for r in results if r.check == "quality slices").figures["rows"]
    assert {row["compared"]["accuracy"]["verdict"] for row in slices} == {"unchanged"}
    assert next(r for r in results if r.check == "quality flips").figures["flips"] == 0


def test_examples_are_paired_by_id_and_the_rest_is_noticed() -> None:
    base = _evaluation(range(50, 250))
    head = _evaluation(range(0, 200), wrong=set(range(100, 160, 2)))  # 30 of the 150 shared examples now wrong
    results = judge(head, base, _policy(), base_name="main")
    flips = next(r for r in results if r.check == "quality flips")
    assert flips.figures["n"] == 150 and flips.figures["flips"] == 30 and flips.figures["broken"] == 30
    assert any("150 examples both sides evaluated" in f.message for f in flips.findings)
    slices = next(r for r in results if r.check == "quality slices")
    rows = {row["slice"]: row for row in slices.figures["rows"]}
    assert rows["even"]["compared"]["accuracy"]["verdict"] == "regressed"  # every wrong one is even
    assert slices.status == "fail"


def test_fail_on_never_reports_a_regression_without_failing() -> None:
    base = _evaluation(range(200))
    head = _evaluation(range(200), failing=set(range(0, 200, 4)))  # a quarter of the INV cases now fail
    results = judge(head, base, _policy(**{"fail-on": "never", "max-failure-rate": 0.5}), base_name="main")
    behaviour = next(r for r in results if r.check == "quality behaviour")
    assert behaviour.figures["rows"][0]["compared"]["verdict"] == "regressed"
    assert behaviour.status == "warn"
