"""The gate comes from the base branch: a pull request cannot loosen the policy that judges it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci_checks.main import main
from results_helpers import CONFIG, check, verdicts

pytestmark = pytest.mark.usefixtures("compare_env")

WORSE = {"metrics.json": json.dumps({"loss": 0.5})}
BASE = {"pyproject.toml": CONFIG, "metrics.json": {"loss": 0.1}}


def policy_change(doc: dict[str, Any]) -> dict[str, Any]:
    return check(doc, "policy changes")


@pytest.mark.parametrize(
    "loosened",
    [
        pytest.param('fail-on = "never"\n', id="fail-on-never"),
        pytest.param('gate = "declared"\n', id="gate-declared-with-nothing-declared"),
        pytest.param('correction = "none"\nfail-on = "missing"\n', id="other-keys"),
        pytest.param("\n[tool.ci-checks.metrics.loss]\nrel-tol = 10.0\n", id="metric-tolerance"),
        pytest.param("\n[tool.ci-checks.metrics.loss]\nrequired = false\n", id="metric-not-required"),
        pytest.param('\n[tool.ci-checks.metrics.loss]\ndirection = "higher"\n', id="metric-direction"),
    ],
)
def test_a_pull_request_cannot_loosen_its_own_gate(compare_project: Any, loosened: str) -> None:
    p = compare_project(BASE, {**WORSE, "pyproject.toml": CONFIG + loosened})
    rc, doc = p.compare()
    assert rc == 1 and verdicts(doc)["metrics.json:loss"] == "regressed"
    change = policy_change(doc)
    assert change["status"] == "warn" and change["findings"][0]["details"]["reason"] == "policy-changed"
    assert "applies once it is merged" in change["findings"][0]["message"]
    assert change["figures"]["changes"] and doc["subject"]["policy"]["source"].startswith("main (")
    # Locally, --policy-from head tries the new policy: it is the one that then decides.
    rc, doc = p.compare("--policy-from", "head")
    assert doc["subject"]["policy"]["source"] == "the working tree" and "policy changes" not in verdicts(doc)


def test_the_policy_diff_names_every_change(compare_project: Any) -> None:
    head = CONFIG + 'fail-on = "never"\n\n[tool.ci-checks.metrics.loss]\nabs-tol = 1.0\n'
    p = compare_project(BASE, {**WORSE, "pyproject.toml": head})
    doc = p.compare()[1]
    assert policy_change(doc)["figures"]["changes"] == [
        {"key": "compare.fail-on", "base": "regressed", "head": "never"},
        {"key": 'metrics."loss".abs-tol', "base": None, "head": 1.0},
    ]


def test_a_tightened_policy_also_waits_for_the_merge(compare_project: Any) -> None:
    base = {"pyproject.toml": CONFIG + 'fail-on = "never"\n', "metrics.json": {"loss": 0.1}}
    p = compare_project(base, {**WORSE, "pyproject.toml": CONFIG})
    rc, doc = p.compare()
    assert rc == 0 and check(doc, "metrics.json:loss")["status"] == "warn"


def test_a_new_metrics_file_of_the_pull_request_is_read_at_once(compare_project: Any) -> None:
    head = CONFIG.replace('["metrics.json"]', '["metrics.json", "extra.json"]')
    p = compare_project(BASE, {"pyproject.toml": head, "extra.json": json.dumps({"f1": 0.8})})
    rc, doc = p.compare()
    assert rc == 0 and verdicts(doc) == {"metrics.json:loss": "unchanged", "extra.json:f1": "new"}


def test_deleting_the_configuration_does_not_remove_the_gate(compare_project: Any) -> None:
    p = compare_project({**BASE, "pyproject.toml": CONFIG + 'fail-on = "any"\n'}, WORSE)
    (p.root / "pyproject.toml").unlink()
    rc, doc = p.compare()
    assert rc == 1 and verdicts(doc) == {"metrics.json:loss": "regressed"}
    assert doc["subject"]["policy"]["compare"]["fail-on"] == "any"


def test_the_pull_request_cannot_choose_its_own_baseline(compare_project: Any) -> None:
    p = compare_project(BASE)
    p.git("checkout", "-q", "-b", "old", "main")
    p.commit({"metrics.json": {"loss": 0.5}}, "an old, worse revision")
    p.git("checkout", "-q", "feature")
    p.write({**WORSE, "pyproject.toml": CONFIG + 'base = "old"\n'})
    rc, doc = p.compare()
    assert rc == 1 and doc["subject"]["base"]["ref"] == "main"
    assert {"key": "compare.base", "base": None, "head": "old"} in policy_change(doc)["figures"]["changes"]
    rc, doc = p.compare("--policy-from", "head")  # trusting the working tree: its own baseline, unchanged
    assert rc == 0 and doc["subject"]["base"]["ref"] == "old"


def test_a_typo_in_the_base_policy_warns_and_the_pull_request_that_fixes_it_passes(
    compare_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = CONFIG + '\n[tool.ci-checks.metrics.lsos]\ndirection = "lower"\n'
    p = compare_project({**BASE, "pyproject.toml": typo}, {"pyproject.toml": typo})
    assert p.compare()[0] == 2  # the same typo in the pull request: its own to fix, exit 2
    assert "'lsos' names no metric" in capsys.readouterr().err
    p.write({"pyproject.toml": CONFIG + '\n[tool.ci-checks.metrics.loss]\ndirection = "lower"\n'})
    rc, doc = p.compare()
    assert rc == 0 and check(doc, "policy lsos")["status"] == "warn"


def test_an_invalid_base_policy_falls_back_to_the_defaults_and_says_so(compare_project: Any) -> None:
    p = compare_project({**BASE, "pyproject.toml": CONFIG + "unknown-key = 1\n"}, {**WORSE, "pyproject.toml": CONFIG})
    rc, doc = p.compare()
    assert rc == 1 and "not valid for this version" in doc["subject"]["policy"]["note"]
    finding = policy_change(doc)["findings"][-1]
    assert finding["severity"] == "warning" and finding["details"]["reason"] == "policy-source"


def test_saved_results_carry_the_policy_they_were_judged_by(compare_project: Any, tmp_path: Path) -> None:
    p = compare_project(BASE)
    saved = tmp_path / "main.json"
    assert main(["compare", "--head-dir", str(p.root), "--output", str(saved), "--quiet"]) == 0
    assert json.loads(saved.read_text())["subject"]["policy"]["compare"]["fail-on"] == "regressed"
    p.write({**WORSE, "pyproject.toml": CONFIG + 'fail-on = "never"\n'})
    rc, doc = p.compare("--base-metrics-json", str(saved))
    assert rc == 1 and doc["subject"]["policy"]["source"] == "the saved results"
    assert policy_change(doc)["figures"]["changes"] == [
        {"key": "compare.fail-on", "base": "regressed", "head": "never"}
    ]
