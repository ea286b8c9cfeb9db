"""Metric policies and verdicts: decide() and policy matching on their own, then every verdict through compare."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from ci_checks.compare import Policy, decide, guess_direction, policy_for
from results_helpers import CONFIG, check, verdicts

pytestmark = pytest.mark.usefixtures("compare_env")


def policy(**overrides: Any) -> Policy:
    fields: dict[str, Any] = {
        "direction": "higher",
        "direction_guessed": False,
        "abs_tol": None,
        "rel_tol": None,
        "required": True,
        "test": "welch",
        "alpha": 0.05,
    }
    fields.update(overrides)
    return Policy(**fields)


# ---------------------------------------------------------------- directions and policy matching


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        pytest.param("metrics.json:accuracy", "higher", id="accuracy"),
        pytest.param("metrics.json:val_loss", "lower", id="loss"),
        pytest.param("eval.json:test.error_rate", "lower", id="error"),
        pytest.param("m.json:latency_ms", "lower", id="latency"),
        pytest.param("m.json:rmse", "lower", id="rmse-word"),
        pytest.param("m.json:timestep_count", "unknown", id="time-inside-a-word"),
        pytest.param("m.json:ppl", "lower", id="perplexity-short"),
        pytest.param("loss_curves.json:f1", "higher", id="only-the-key-counts"),
        # The names the issue found guessed "higher is better", and their neighbours.
        *(
            pytest.param(f"m.json:{key}", "lower", id=key)
            for key in (
                "wer",
                "cer",
                "nll",
                "fid",
                "bpd",
                "runtime",
                "train_seconds",
                "eval_ms",
                "mape",
                "kl_divergence",
                "peak_memory_mb",
                "val/top1_err",
                "valLoss",
                "test.error_rate",
                "gpuMemoryMiB",
                "brier_score",
            )
        ),
        *(
            pytest.param(f"m.json:{key}", "higher", id=key)
            for key in ("top1", "eval/mAP", "rouge_l", "tokens_per_sec", "samples_per_second", "f1_score", "mIoU")
        ),
        pytest.param("m.json:time_to_accuracy", "unknown", id="both-ways"),
        pytest.param("m.json:num_params", "unknown", id="no-known-word"),
        pytest.param("m.json:per_class_cat", "unknown", id="cat"),
    ],
)
def test_guess_direction_from_the_key(name: str, direction: str) -> None:
    assert guess_direction(name) == direction


def test_policy_for_merges_the_most_specific_last() -> None:
    policies = {
        "*": {"rel-tol": 0.05},
        "*accuracy": {"abs-tol": 0.05, "required": False},
        "top1_accuracy": {"abs-tol": 0.001},
        "eval.json:top1_accuracy": {"direction": "lower"},
    }
    exact = policy_for("eval.json:top1_accuracy", policies)
    assert (exact.abs_tol, exact.rel_tol, exact.required, exact.direction) == (0.001, 0.05, False, "lower")
    assert not exact.direction_guessed
    other = policy_for("train.json:top1_accuracy", policies)
    assert (other.abs_tol, other.direction, other.direction_guessed) == (0.001, "higher", True)
    assert policy_for("x.json:val_accuracy", policies).abs_tol == 0.05
    default = policy_for("x.json:loss", {})
    assert default == Policy("lower", True, None, None, True, "welch", 0.05)


# ---------------------------------------------------------------- decide()


@pytest.mark.parametrize(
    ("base", "head", "direction", "verdict"),
    [
        pytest.param([0.9], [0.9], "higher", "unchanged", id="unchanged"),
        pytest.param([0.9], [0.95], "higher", "improved", id="improved"),
        pytest.param([0.9], [0.85], "higher", "regressed", id="regressed"),
        pytest.param([0.9], [0.905], "higher", "within-noise", id="within-default-1pct"),
        pytest.param([0.3], [0.36], "lower", "regressed", id="lower-is-better-up"),
        pytest.param([0.3], [0.2], "lower", "improved", id="lower-is-better-down"),
    ],
)
def test_decide_single_values_by_tolerance(base: list[float], head: list[float], direction: str, verdict: str) -> None:
    decided = decide(base, head, policy(direction=direction))
    assert decided["verdict"] == verdict and decided["test"] == "tolerance" and decided["p_value"] is None
    assert decided["rel_tol"] == 0.01 and decided["tolerance"] == pytest.approx(0.01 * base[0])


def test_decide_with_seeds_needs_significance_and_the_tolerance() -> None:
    worse = [0.897, 0.890, 0.903, 0.894, 0.899]
    decided = decide(BASE_SEEDS, worse, policy())
    assert decided["verdict"] == "regressed" and decided["test"] == "welch" and decided["rel_tol"] is None
    assert decided["p_value"] < 0.01 and decided["ci"][0] < decided["delta"] < decided["ci"][1]
    assert decide(BASE_SEEDS, worse, policy(abs_tol=0.02))["verdict"] == "within-noise"
    noisy = [0.93, 0.88, 0.92, 0.87, 0.905]
    assert decide(BASE_SEEDS, noisy, policy())["verdict"] == "within-noise"


def test_decide_bootstrap_is_seeded() -> None:
    worse = [0.897, 0.890, 0.903, 0.894, 0.899]
    first = decide(BASE_SEEDS, worse, policy(test="bootstrap"), seed=3)
    assert first["verdict"] == "regressed" and first["test"] == "bootstrap"
    assert decide(BASE_SEEDS, worse, policy(test="bootstrap"), seed=3) == first


# ---------------------------------------------------------------- verdicts


def test_every_verdict_on_single_values(compare_project: Any) -> None:
    base = {
        "accuracy": 0.90,
        "f1": 0.80,
        "recall": 0.70,
        "loss": 0.30,
        "latency_ms": 10.0,
        "gone": 1.0,
        "bleu": 30.0,
        "name": 1.0,
        "per_class": 0.5,
        "model": "resnet",
    }
    head = {
        "accuracy": 0.95,
        "f1": 0.80,
        "recall": 0.702,
        "loss": 0.36,
        "latency_ms": 9.0,
        "bleu": "n/a",
        "name": float("nan"),
        "per_class": [{"a": 1}],
        "brand_new": 3.0,
        "model": "resnet",
    }
    p = compare_project({"pyproject.toml": CONFIG, "metrics.json": base}, {"metrics.json": json.dumps(head)})
    rc, doc = p.compare()
    assert rc == 1
    assert verdicts(doc) == {
        "metrics.json:accuracy": "improved",
        "metrics.json:f1": "unchanged",
        "metrics.json:recall": "within-noise",
        "metrics.json:loss": "regressed",
        "metrics.json:latency_ms": "improved",
        "metrics.json:bleu": "invalid",
        "metrics.json:name": "invalid",
        "metrics.json:per_class": "invalid",
        "metrics.json:brand_new": "new",
        "metrics.json:gone": "missing",
        "metrics.json:model": "invalid",
    }
    loss = check(doc, "metrics.json:loss")
    assert loss["status"] == "fail" and loss["figures"]["direction"] == "lower" and loss["figures"]["direction_guessed"]
    assert loss["summary"] == "0.3 -> 0.36 (+20.0%), regressed (tolerance 0.003)"
    assert "guessed" in loss["findings"][0]["message"] and loss["findings"][0]["location"]["file"] == "metrics.json"
    # A number on main that is NaN, a string or a nested structure now fails a gating metric: it is broken.
    assert check(doc, "metrics.json:name")["status"] == "fail"
    assert check(doc, "metrics.json:bleu")["findings"][0]["severity"] == "error"
    assert check(doc, "metrics.json:bleu")["findings"][0]["details"]["reason"] == "invalid"
    assert check(doc, "metrics.json:name")["findings"][0]["details"]["reason"] == "nonfinite"
    assert "nested structure" in check(doc, "metrics.json:per_class")["findings"][0]["message"]
    assert check(doc, "metrics.json:gone")["status"] == "warn"
    assert check(doc, "metrics.json:model")["findings"] == []  # a label on both sides: nothing new to report
    assert check(doc, "metrics.json:brand_new")["findings"] == []
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert figures["base"] == 0.90 and figures["head"] == 0.95 and figures["base_samples"] == [0.90]
    assert figures["test"] == "tolerance" and figures["rel_tol"] == 0.01 and figures["abs_tol"] is None
    assert figures["delta"] == pytest.approx(0.05) and figures["relative"] == pytest.approx(0.05 / 0.9)
    assert doc["subject"]["base"]["source"] == "git" and doc["subject"]["base"]["ref"] == "main"
    assert doc["subject"]["head"] == {"ref": "working tree", "sha": p.git("rev-parse", "HEAD").strip()}
    assert doc["subject"]["first_run"] is False and doc["subject"]["fail_on"] == "regressed"


POLICY = CONFIG + """
[tool.ci-checks.metrics."*accuracy"]
abs-tol = 0.05

[tool.ci-checks.metrics.top1_accuracy]
abs-tol = 0.001

[tool.ci-checks.metrics.score]
direction = "lower"
required = false
"""


def test_policy_globs_specific_names_direction_and_required(compare_project: Any) -> None:
    p = compare_project(
        {"pyproject.toml": POLICY, "metrics.json": {"val_accuracy": 0.9, "top1_accuracy": 0.9, "score": 1.0}},
        {"metrics.json": json.dumps({"val_accuracy": 0.87, "top1_accuracy": 0.89, "score": 2.0})},
    )
    rc, doc = p.compare()
    assert verdicts(doc) == {
        "metrics.json:val_accuracy": "within-noise",
        "metrics.json:top1_accuracy": "regressed",
        "metrics.json:score": "regressed",
    }
    assert check(doc, "metrics.json:top1_accuracy")["figures"]["abs_tol"] == 0.001
    score = check(doc, "metrics.json:score")
    assert score["figures"]["direction"] == "lower" and not score["figures"]["direction_guessed"]
    assert score["status"] == "warn" and not score["figures"]["required"]  # not required: a warning only
    assert rc == 1


# ---------------------------------------------------------------- repeated measurements


def _welch_reference(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """t, df and the one-sided p-value by hand: the formulas, and the t density integrated numerically."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    t = (mb - ma) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    pdf = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    # P(T > |t|) = 1/2 - integral from 0 to |t| (Simpson, 20000 intervals)
    n, h = 20000, abs(t) / 20000
    area = h / 3 * (pdf(0) + pdf(abs(t)) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n)))
    return t, df, 0.5 - area


BASE_SEEDS = [0.912, 0.905, 0.918, 0.909, 0.914]


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        pytest.param([0.897, 0.890, 0.903, 0.894, 0.899], "regressed", id="regressed-3-sigma"),
        pytest.param([0.915, 0.902, 0.921, 0.906, 0.909], "within-noise", id="noise"),
        pytest.param([0.930, 0.925, 0.934, 0.928, 0.931], "improved", id="improved"),
    ],
)
def test_seed_files_by_glob_use_welch(compare_project: Any, head: list[float], verdict: str) -> None:
    config = '[tool.ci-checks.compare]\nfiles = ["metrics/seed_*.json"]\n'
    base = {f"metrics/seed_{i}.json": {"eval": {"accuracy": v}} for i, v in enumerate(BASE_SEEDS)}
    changed = {f"metrics/seed_{i}.json": json.dumps({"eval": {"accuracy": v}}) for i, v in enumerate(head)}
    p = compare_project({"pyproject.toml": config, **base}, changed)
    rc, doc = p.compare()
    figures = check(doc, "metrics/seed_*.json:eval.accuracy")["figures"]
    assert figures["verdict"] == verdict and rc == (1 if verdict == "regressed" else 0)
    assert figures["test"] == "welch" and figures["base_samples"] == BASE_SEEDS and figures["head_samples"] == head
    t, df, p_value = _welch_reference(BASE_SEEDS, head)
    assert figures["p_value"] == pytest.approx(p_value, rel=1e-6, abs=1e-12)
    lo, hi = figures["ci"]
    assert lo < figures["delta"] < hi


def test_a_list_of_numbers_is_seeds_and_bootstrap_reports_an_interval(compare_project: Any) -> None:
    config = CONFIG + '\n[tool.ci-checks.metrics.accuracy]\ntest = "bootstrap"\n'
    p = compare_project(
        {"pyproject.toml": config, "metrics.json": {"accuracy": BASE_SEEDS, "loss": [0.2, 0.21, 0.19]}},
        {"metrics.json": json.dumps({"accuracy": [0.897, 0.890, 0.903, 0.894, 0.899], "loss": [0.2, 0.22, 0.18]})},
    )
    rc, doc = p.compare()
    acc, loss = check(doc, "metrics.json:accuracy"), check(doc, "metrics.json:loss")
    assert acc["figures"]["test"] == "bootstrap" and acc["figures"]["verdict"] == "regressed"
    lo, hi = acc["figures"]["ci"]
    assert lo < hi < 0 and "90% CI" in acc["summary"]
    assert loss["figures"]["test"] == "welch" and loss["figures"]["verdict"] == "unchanged"  # same mean
    assert p.compare()[1]["checks"][0]["figures"]["ci"] == acc["figures"]["ci"]  # seeded: the same every run
    assert rc == 1


def test_significant_but_within_tolerance_is_noise(compare_project: Any) -> None:
    config = CONFIG + "\n[tool.ci-checks.metrics.accuracy]\nabs-tol = 0.02\n"
    p = compare_project(
        {"pyproject.toml": config, "metrics.json": {"accuracy": BASE_SEEDS}},
        {"metrics.json": json.dumps({"accuracy": [0.897, 0.890, 0.903, 0.894, 0.899]})},
    )
    rc, doc = p.compare()
    figures = check(doc, "metrics.json:accuracy")["figures"]
    assert figures["p_value"] < 0.01 and figures["verdict"] == "within-noise" and rc == 0


def test_policy_for_a_metric_that_exists_nowhere(compare_project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    config = CONFIG + '\n[tool.ci-checks.metrics.acuracy]\ndirection = "higher"\n'
    p = compare_project({"pyproject.toml": config, "metrics.json": {"accuracy": 0.9, "loss": 0.1}}, {})
    assert p.compare()[0] == 2
    assert capsys.readouterr().err == (
        "ci-checks: error: [tool.ci-checks.metrics] 'acuracy' names no metric on either side (closest: "
        "metrics.json:accuracy); fix the name, or set required = false if the metric may be absent\n"
    )
    p.write({"pyproject.toml": config + "required = false\n"})
    rc, doc = p.compare()
    policy = check(doc, "policy acuracy")
    assert rc == 0 and policy["status"] == "warn" and policy["figures"]["closest"] == ["metrics.json:accuracy"]


# ---------------------------------------------------------------- values: keys, per-class lists


def test_dotted_and_nested_keys_are_compared_apart(compare_project: Any) -> None:
    p = compare_project(
        {"pyproject.toml": CONFIG, "metrics.json": {"val.acc": 0.5, "val": {"acc": 0.9}}},
        {"metrics.json": json.dumps({"val.acc": 0.5, "val": {"acc": 0.8}})},
    )
    rc, doc = p.compare()
    assert verdicts(doc) == {'metrics.json:"val.acc"': "unchanged", "metrics.json:val.acc": "regressed"} and rc == 1


def test_per_class_lists_are_compared_per_class_or_skipped(compare_project: Any) -> None:
    config = CONFIG + '\n[tool.ci-checks.metrics.f1]\nvalues = "per-class"\n'
    base = {"per_class_recall": [0.9, 0.8], "f1": [[0.9, 0.8], [0.91, 0.79], [0.89, 0.81]], "iou": [[0.5, 0.6]]}
    head = {"per_class_recall": [0.9, 0.6], "f1": [[0.9, 0.7], [0.91, 0.69], [0.89, 0.71]], "iou": [[0.5, 0.6]]}
    p = compare_project({"pyproject.toml": config, "metrics.json": base}, {"metrics.json": json.dumps(head)})
    rc, doc = p.compare()
    assert verdicts(doc) == {
        "metrics.json:per_class_recall[0]": "unchanged",  # per-class from its name
        "metrics.json:per_class_recall[1]": "regressed",
        "metrics.json:f1[0]": "unchanged",  # declared per-class, rows are seeds: Welch per class
        "metrics.json:f1[1]": "regressed",
        "metrics.json:iou": "skipped",  # a list of lists nobody declared
    }
    assert check(doc, "metrics.json:f1[1]")["figures"]["test"] == "welch"
    (notice,) = check(doc, "metrics.json:iou")["findings"]
    assert notice["severity"] == "notice" and '[tool.ci-checks.metrics."iou"] values = "per-class"' in notice["message"]
    assert rc == 1
