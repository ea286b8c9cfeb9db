"""The release: scripts/release.py (tag, version, changelog and snippet pins agree; the notes), and the shape of
.github/workflows/release.yml. The snippets of README.md and docs/ name the tag the next release creates."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("release_script", ROOT / "scripts" / "release.py")
assert _spec and _spec.loader
release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_every_snippet_pins_the_tag_of_the_version_in_pyproject():
    pins = release.snippet_pins()
    assert len(pins) >= 5, pins  # README: pip, workflow (2), action (2), pre-commit; docs: more
    assert {ref for _, ref in pins} == {f"v{VERSION}"}, [p for p in pins if p[1] != f"v{VERSION}"]
    # What remains before a release is the changelog's dated section, nothing else.
    assert all("CHANGELOG.md" in p for p in release.problems(f"v{VERSION}")), release.problems(f"v{VERSION}")


def _project(root: Path, *, version: str = "1.2.3", changelog: str | None = None, readme: str | None = None) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "ci-checks"\nversion = "{version}"\n')
    (root / "CHANGELOG.md").write_text(
        changelog
        if changelog is not None
        else "# Changelog\n\n## [Unreleased]\n\n## [1.2.3] - 2026-05-01\n\n### Added\n\n- A thing.\n\n"
        "## [1.2.2] - 2026-04-01\n\n- Older.\n"
    )
    (root / "README.md").write_text(
        readme
        if readme is not None
        else 'pip install "ci-checks @ git+https://github.com/OWNER/ci-checks@v1.2.3"\n'
        "    uses: OWNER/ci-checks/.github/workflows/ml-ci.yml@v1.2.3\n"
        "  - repo: https://github.com/OWNER/ci-checks\n    rev: v1.2.3\n"
        "  - repo: https://github.com/psf/black\n    rev: v24.1.0\n"  # another repository's pin is not ours
    )
    (root / "docs" / "x.md").write_text("uses: OWNER/ci-checks/actions/setup@v1.2.3\n")
    return root


def test_a_ready_release(tmp_path, capsys):
    root = _project(tmp_path)
    assert release.problems("v1.2.3", root) == []
    assert release.main(["check", "v1.2.3", "--root", str(root)]) == 0
    assert "v1.2.3 is ready" in capsys.readouterr().out
    assert release.main(["notes", "v1.2.3", "--root", str(root)]) == 0
    assert capsys.readouterr().out == "### Added\n\n- A thing.\n"


@pytest.mark.parametrize(
    ("tag", "kwargs", "problem"),
    [
        pytest.param("1.2.3", {}, "expected vMAJOR.MINOR.PATCH", id="tag-format"),
        pytest.param(
            "v1.2.4", {}, 'pyproject.toml says version 1.2.3, the tag v1.2.4: set version = "1.2.4"', id="version"
        ),
        pytest.param(
            "v1.2.3",
            {"changelog": "## [Unreleased]\n\n- A thing.\n"},
            "CHANGELOG.md has no '## [1.2.3] - YYYY-MM-DD' section",
            id="no-section",
        ),
        pytest.param(
            "v1.2.3", {"changelog": "## [1.2.3]\n\n- A thing.\n"}, "the section [1.2.3] has no date", id="no-date"
        ),
        pytest.param(
            "v1.2.3", {"changelog": "## [1.2.3] - 2026-05-01\n\n"}, "the section [1.2.3] is empty", id="empty"
        ),
        pytest.param(
            "v1.2.3",
            {"readme": "    uses: OWNER/ci-checks/.github/workflows/ml-ci.yml@v1.2.2\n"},
            "README.md pins v1.2.2, not v1.2.3",
            id="stale-snippet",
        ),
        pytest.param(
            "v1.2.3",
            {"readme": "  - repo: https://github.com/OWNER/ci-checks\n    rev: v1.0.0\n"},
            "README.md pins v1.0.0, not v1.2.3",
            id="stale-pre-commit-rev",
        ),
    ],
)
def test_what_is_not_ready_is_named(tmp_path, capsys, tag, kwargs, problem):
    root = _project(tmp_path, **kwargs)
    found = release.problems(tag, root)
    assert any(problem in p for p in found), found
    assert release.main(["check", tag, "--root", str(root)]) == 1
    assert problem in capsys.readouterr().err


def test_notes_of_a_missing_version(tmp_path, capsys):
    root = _project(tmp_path)
    assert release.main(["notes", "v9.9.9", "--root", str(root)]) == 1
    assert "CHANGELOG.md has no section for v9.9.9" in capsys.readouterr().err


def _load(name: str) -> Any:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_the_release_workflow():
    doc = _load("release.yml")
    assert doc[True] == {"push": {"tags": ["v*.*.*"]}}, "a pushed tag, nothing else, releases"
    jobs = doc["jobs"]
    # The rollback drill gates publishing: a release the previous one cannot be rolled back to is not published.
    assert jobs["publish"]["needs"] == ["build", "rollback"] and jobs["github-release"]["needs"] == ["publish"]
    build = "\n".join(step.get("run", "") for step in jobs["build"]["steps"])
    assert 'python scripts/release.py check "${CI_CHECKS_TAG}"' in build
    assert re.search(r'python -m pip install .*"build==[\d.]+" "twine==[\d.]+"', build)
    assert "python -m build" in build and "twine check --strict" in build
    assert not any("cache" in (s.get("with") or {}) for s in jobs["build"]["steps"]), "no cache in a release build"
    publish = jobs["publish"]
    assert publish["permissions"] == {"id-token": "write"} and publish["environment"]["name"] == "pypi"
    assert publish["steps"][-1]["uses"].startswith("pypa/gh-action-pypi-publish@")
    assert "with" not in publish["steps"][-1], "trusted publishing: no password, no token"
    github_release = jobs["github-release"]
    assert github_release["permissions"] == {"contents": "write"}
    create = github_release["steps"][-1]["run"]
    assert 'gh release create "${CI_CHECKS_TAG}" dist/* --verify-tag' in create
    assert "--notes-file release-notes/notes.md" in create
    assert jobs["build"]["permissions"] == {"contents": "read"}


def test_the_changelog_has_an_unreleased_section_for_the_next_version():
    sections = release.sections((ROOT / "CHANGELOG.md").read_text())
    assert "Unreleased" in sections and sections["Unreleased"][1].strip()
