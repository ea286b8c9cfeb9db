"""data-stats: snapshots, drift against a real git base (the base's thresholds judge), saved stats, history and the
report's Data section."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cmarkgfm
import numpy as np
import pandas as pd
import pytest
from cmarkgfm.cmark import Options

from ci_checks.main import main


def table(n: int = 2000, seed: int = 0, *, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n) + seed * 100_000,
            "age": rng.integers(18, 90, n),
            "income": (rng.lognormal(10, 1, n) * (1 + shift)).round(2),
            "country": rng.choice(["DE", "FR", "IT"], n, p=[0.5, 0.3, 0.2]),
            "label": rng.choice([0, 1, 2], n, p=[0.5, 0.3, 0.2]),
        }
    )


CONFIG = """
[tool.ci-checks.data.datasets.train]
path = "data/train.csv"
label = "label"
key = "id"
"""


@pytest.fixture
def repo(tmp_path: Path, git_repo: Any, compare_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A project on main: the config and a training table committed."""
    project = git_repo.init(tmp_path / "project")
    (project.path / "data").mkdir()
    table().to_csv(project.path / "data" / "train.csv", index=False)
    project.commit({"pyproject.toml": CONFIG}, "main")
    monkeypatch.chdir(project.path)
    return project


def stats(*args: str) -> tuple[int, dict[str, Any]]:
    out = Path("out.json")
    if out.exists():
        out.unlink()
    code = main(["data-stats", "--quiet", "--format", "json", "--output", str(out), *args])
    return code, (json.loads(out.read_text()) if out.exists() else {})


def drift(doc: dict[str, Any], dataset: str = "train") -> dict[str, Any]:
    (check,) = [c for c in doc["checks"] if c["check"] == f"drift: {dataset}"]
    return check


def verdicts(doc: dict[str, Any], dataset: str = "train") -> dict[str, str]:
    return {f["feature"]: f["verdict"] for f in drift(doc, dataset)["figures"]["features"]}


def test_a_snapshot_is_the_same_for_a_shuffled_copy(repo):
    code, doc = stats("--stats-dir", "snaps")
    assert code == 0
    snap = json.loads(Path("snaps/train.json").read_text())
    assert snap["rows"] == 2000 and set(snap["columns"]) == {"age", "income", "country", "label"}  # no key
    assert snap["columns"]["country"]["top"]["DE"] > snap["columns"]["country"]["top"]["IT"]
    assert len(snap["columns"]["income"]["quantiles"]) == 101
    table().sample(frac=1, random_state=3).to_csv("data/train.csv", index=False)
    assert stats("--stats-dir", "snaps")[0] == 0
    again = json.loads(Path("snaps/train.json").read_text())
    assert again["columns"]["income"]["quantiles"] == snap["columns"]["income"]["quantiles"]
    assert again["columns"]["label"]["top"] == snap["columns"]["label"]["top"]


def test_clean_changes_do_not_drift(repo):
    pd.concat([table(), table(800, seed=1)]).sample(frac=1, random_state=0).to_csv("data/train.csv", index=False)
    code, doc = stats("--base", "HEAD")
    assert code == 0, drift(doc)["findings"]
    assert set(verdicts(doc).values()) <= {"unchanged", "within-noise"}
    assert drift(doc)["figures"]["rows"] == [2000, 2800]


@pytest.mark.parametrize(
    ("corrupt", "feature"),
    [
        pytest.param(lambda d: d.assign(income=d["income"] * 100), "income", id="unit-change"),
        pytest.param(lambda d: d.assign(country=d["country"].replace("DE", "Germany")), "country", id="renamed"),
        pytest.param(lambda d: d[d["label"] != 2], "label", id="dropped-class"),
        pytest.param(lambda d: d.assign(age=d["age"].where(d.index % 5 != 0)), "age", id="nulls"),
        pytest.param(lambda d: d.assign(age=d["age"] + 15), "age", id="shifted"),
    ],
)
def test_corruptions_drift_against_the_base_revision(repo, corrupt, feature):
    corrupt(table()).to_csv("data/train.csv", index=False)
    code, doc = stats("--base", "HEAD")
    assert code == 1
    assert verdicts(doc)[feature] == "changed"
    assert [f["details"]["feature"] for f in drift(doc)["findings"] if f["severity"] == "error"] == [feature]


def test_the_base_revisions_thresholds_judge_not_the_pull_requests(repo):
    table(shift=0.8).to_csv("data/train.csv", index=False)
    loosened = CONFIG.replace(
        "[tool.ci-checks.data.datasets", "[tool.ci-checks.data]\npsi = 50.0\n\n[tool.ci-checks.data.datasets"
    )
    Path("pyproject.toml").write_text(loosened)
    code, doc = stats("--base", "HEAD")
    assert code == 1 and drift(doc)["figures"]["policy"]["psi"] == 0.2
    assert stats("--base", "HEAD", "--policy-from", "head")[0] == 0  # the PR's own gate, tried locally


def test_dataset_path_moved_by_the_pull_request_reads_the_bases_own_path(repo):
    Path("data/train.csv").rename("data/train-v2.csv")
    Path("pyproject.toml").write_text(CONFIG.replace("data/train.csv", "data/train-v2.csv"))
    code, doc = stats("--base", "HEAD")
    assert code == 0 and set(verdicts(doc).values()) == {"unchanged"}


def test_saved_stats_from_main_are_a_baseline_and_carry_their_policy(repo):
    assert stats()[0] == 0
    Path("out.json").rename("main.json")
    table(shift=0.8).to_csv("data/train.csv", index=False)
    code, doc = stats("--base-stats", "main.json")
    assert code == 1 and verdicts(doc)["income"] == "changed"
    assert drift(doc)["figures"]["base"] == "saved stats (" + repo.git("rev-parse", "HEAD")[:7] + ")"


def test_history_keeps_each_commit_and_shows_the_trend_of_what_moved(repo):
    for shift in (0.0, 0.01, 0.02):  # three commits on main, each recorded by the workflow
        table(shift=shift).to_csv("data/train.csv", index=False)
        repo.commit({}, f"shift {shift}")
        assert stats("--history", "../hist", "--record")[0] == 0
    assert stats("--history", "../hist", "--record")[0] == 0  # a rerun of the last commit replaces its file
    assert len(list(Path("../hist").glob("data-stats-*.json"))) == 3
    table(shift=0.9).to_csv("data/train.csv", index=False)
    code, doc = stats("--history", "../hist", "--base", "HEAD")
    (snap,) = [c for c in doc["checks"] if c["check"] == "stats: train"]
    assert snap["figures"]["history"] == 3
    assert set(snap["series"]) == {"trend:income", "trend:rows"}
    assert snap["series"]["trend:income"][-1] > 1.5 * snap["series"]["trend:income"][0]
    Path("report.md").unlink(missing_ok=True)
    assert main(["report", "out.json", "--output", "report.md"]) == 0
    text = Path("report.md").read_text()
    assert "Trend of `train` over the last 3 commit(s)" in text and "`income`" in text


def test_spec_data_with_a_path_is_read_at_the_base_too(repo):
    Path("spec.py").write_text(
        "import numpy as np\n\ndef arrays(path):\n    d = np.load(path)\n    return list(zip(d['x'], d['y']))\n"
    )
    rng = np.random.default_rng(0)
    np.savez("data/arrays.npz", x=rng.normal(size=(600, 2)).astype("float32"), y=rng.integers(0, 3, 600))
    config = CONFIG + '\n[tool.ci-checks.data.datasets.arrays]\nspec = "spec.py:arrays"\npath = "data/arrays.npz"\n'
    repo.commit({"pyproject.toml": config}, "arrays")
    np.savez("data/arrays.npz", x=rng.normal(1.0, size=(600, 2)).astype("float32"), y=rng.integers(0, 3, 600))
    code, doc = stats("--base", "HEAD", "arrays")
    assert code == 1 and verdicts(doc, "arrays") == {"x[0]": "changed", "x[1]": "changed", "label": "unchanged"}


def test_report_escapes_names_that_come_from_the_data(repo):
    evil = "@admin <img src=x> [a](http://e.vil)"
    table().rename(columns={"country": evil}).to_csv("data/train.csv", index=False)
    repo.commit({}, "evil column")
    df = table().rename(columns={"country": evil})
    df[evil] = df[evil].replace("DE", "#12 `x`|y")
    df.to_csv("data/train.csv", index=False)
    assert stats("--base", "HEAD")[0] == 1
    assert main(["report", "out.json", "--output", "report.md"]) == 0
    html = cmarkgfm.github_flavored_markdown_to_html(Path("report.md").read_text(), options=Options.CMARK_OPT_UNSAFE)
    assert "<img" not in html and "<a " not in html  # no live image, link, mention or issue reference
    prose = re.sub(r"<code>.*?</code>", "", html)  # code spans are inert; elsewhere a word joiner breaks autolinks
    assert "#12" not in prose and "@admin" not in prose
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert any("drifted" in r and "&lt;img src=x&gt;" in r for r in rows)  # one cell: the | stayed in it


def test_bad_inputs_of_data_stats_are_exit_2(repo, capsys):
    assert main(["data-stats", "--quiet", "--record"]) == 2
    assert main(["data-stats", "--quiet", "--base", "HEAD", "--base-stats", "x.json"]) == 2
    assert main(["data-stats", "--quiet", "--base", "no-such-ref"]) == 2
    Path("x.json").write_text("{}")
    assert main(["data-stats", "--quiet", "--base-stats", "x.json"]) == 2
    err = capsys.readouterr().err
    assert "--record needs --history" in err and "not both" in err and "no-such-ref" in err
    assert "Traceback" not in err


def test_data_the_base_cannot_provide_is_a_notice_not_a_failure(repo):
    Path("data/new.csv").write_text("a,b\n1,2\n")
    Path("pyproject.toml").write_text(CONFIG + '\n[tool.ci-checks.data.datasets.new]\npath = "data/new.csv"\n')
    code, doc = stats("--base", "HEAD")
    assert code == 0
    (new,) = [c for c in doc["checks"] if c["check"] == "drift: new"]
    assert new["findings"][0]["severity"] == "notice" and "neither in git nor" in new["findings"][0]["message"]


def test_columns_without_values_compare_their_null_rate_only(repo):
    df = table()
    df["empty"] = np.nan
    df["constant"] = 7.0
    df.to_csv("data/train.csv", index=False)
    repo.commit({}, "empty and constant columns")
    assert stats("--base", "HEAD")[0] == 0
    df["empty"] = 1.0  # filled in: fewer nulls is no drift
    df["constant"] = 7.0
    df.to_csv("data/train.csv", index=False)
    code, doc = stats("--base", "HEAD")
    assert code == 0 and verdicts(doc)["empty"] == "unchanged" and verdicts(doc)["constant"] == "unchanged"


def test_malformed_saved_stats_are_bad_input(repo, capsys):
    assert stats()[0] == 0
    doc = json.loads(Path("out.json").read_text())
    doc["checks"][0]["figures"]["snapshot"]["columns"]["income"]["quantiles"] = "many"
    doc["subject"]["policy"]["psi"] = "high"
    Path("main.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["data-stats", "--quiet", "--base-stats", "main.json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "main.json: the statistics of 'train' are malformed" in err, err


def test_report_plots_the_drifted_features_and_progress_goes_to_stderr(repo, capsys):
    table(shift=0.9).to_csv("data/train.csv", index=False)
    capsys.readouterr()
    assert main(["data-stats", "--base", "HEAD", "--format", "json", "--output", "out.json"]) == 1
    assert "ci-checks data: train: 2,000 rows in " in capsys.readouterr().err
    assert main(["report", "out.json", "--output", "report.md", "--plots-dir", "plots", "--embed-images"]) == 0
    assert Path("plots/data-0.png").read_bytes().startswith(b"\x89PNG")
    assert "![data train: income](plots/data-0.png)" in Path("report.md").read_text()
