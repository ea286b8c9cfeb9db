"""The ci-checks-data-files pre-commit hook: staged data files that a dataset declares are checked, others pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_checks.hooks import data_files

CONFIG = """
[tool.ci-checks.data.datasets.labels]
path = "data/labels.csv"
key = "id"
[tool.ci-checks.data.datasets.labels.columns.label]
isin = ["cat", "dog"]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labels.csv").write_text("id,label\n1,cat\n2,dog\n3,cat\n")
    (tmp_path / "data" / "other.csv").write_text("a\n1\n1\n")
    return tmp_path


def test_a_clean_declared_file_and_an_undeclared_one_pass(project, capsys):
    assert data_files.main(["data/labels.csv", "data/other.csv", "README.md"]) == 0
    assert capsys.readouterr().err == ""


def test_a_declared_file_that_breaks_its_expectations_fails(project, capsys):
    (project / "data" / "labels.csv").write_text("id,label\n1,cat\n2,bird\n2,dog\n")
    assert data_files.main(["data/labels.csv"]) == 1
    err = capsys.readouterr().err
    assert "isin(['cat', 'dog']) failed for 1 row(s); first rows: 1 (bird)" in err
    assert "column 'id': unique failed for 1 row(s)" in err


def test_large_files_are_left_to_ci_and_bad_options_exit_2(project, capsys):
    (project / "data" / "labels.csv").write_text("id,label\n" + "".join(f"{i},bird\n" for i in range(400)))
    assert data_files.main(["data/labels.csv", "--max-kb", "1"]) == 0
    assert "left to data-check in CI" in capsys.readouterr().err
    assert data_files.main(["data/labels.csv", "--max-kb", "0"]) == 2


def test_a_repository_without_data_config_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.ci-checks]\nseed = 0\n")
    (tmp_path / "x.csv").write_text("a\n1\n")
    assert data_files.main(["x.csv"]) == 0


def test_validate_config_covers_the_data_table(tmp_path, monkeypatch, capsys):
    from ci_checks.hooks import validate_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(CONFIG + "min-class-share = 0.1\n")
    assert validate_config.main(["pyproject.toml"]) == 1  # a dataset key under a column table
    assert "unknown key 'min-class-share'" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text(
        CONFIG.replace(
            "[tool.ci-checks.data.datasets.labels]\n",
            "[tool.ci-checks.data]\npsi = 0.25\nalpa = 0.1\n\n[tool.ci-checks.data.datasets.labels]\n",
        )
    )
    assert validate_config.main(["pyproject.toml"]) == 1
    assert "unknown key 'alpa'; did you mean 'alpha'?" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    assert validate_config.main(["pyproject.toml"]) == 0
