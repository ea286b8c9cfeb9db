"""Where files come from: globs read like glob.glob, and a git revision read through one git process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ci_checks.compare.files import FileSpec, Metric, read_metrics
from ci_checks.compare.trees import GitTree, glob_regex


@pytest.mark.parametrize(
    ("pattern", "path", "match"),
    [
        pytest.param("metrics/seed_*.json", "metrics/seed_1.json", True, id="star"),
        pytest.param("metrics/*.json", "metrics/sub/a.json", False, id="star-stays-in-folder"),
        pytest.param("**/metrics.json", "metrics.json", True, id="globstar-zero"),
        pytest.param("**/metrics.json", "a/b/metrics.json", True, id="globstar-many"),
        pytest.param("seed_[!0].json", "seed_0.json", False, id="negated-class"),
        pytest.param("seed_?.json", "seed_7.json", True, id="question"),
    ],
)
def test_glob_regex_reads_globs_like_glob_glob(pattern: str, path: str, match: bool) -> None:
    assert bool(glob_regex(pattern).fullmatch(path)) is match


def test_git_tree_reads_and_globs_a_revision_under_a_subfolder(tmp_path: Path, git_repo: Any) -> None:
    git_repo.init(tmp_path).commit({f"proj/m/seed_{i}.json": f'{{"acc": 0.{i}}}' for i in range(3)}, "x")
    tree = GitTree(str(tmp_path), "HEAD", "proj/", label="main")
    try:
        assert tree.glob("m/seed_*.json") == ["m/seed_0.json", "m/seed_1.json", "m/seed_2.json"]
        assert tree.read("m/seed_2.json") == b'{"acc": 0.2}' and tree.read("m/nope.json") is None
        assert tree.is_dir("m") and not tree.is_dir("n")
        metrics: dict[str, Metric] = {}
        read_metrics(tree, FileSpec("m/seed_*.json"), metrics)
        assert metrics["m/seed_*.json:acc"].samples == [0.0, 0.1, 0.2]
        assert tree.where("m/x.json") == "m/x.json at main"
    finally:
        tree.close()
