"""Every link of the docs resolves: relative links and their anchors in every Markdown file of the repository, every
docs page that code, YAML or comments name, and the docs URLs that `ci-checks init` writes into a user's files."""

from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _files(*patterns: str) -> list[pathlib.Path]:
    """The repository's files (tracked, or new and not ignored) that match the git pathspecs."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z", "--", *patterns],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file()})


MARKDOWN = [p for p in _files("*.md") if "fixtures" not in p.parts]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def outside_fences(text: str) -> list[str]:
    lines, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence:
            lines.append(line)
    return lines


def anchors(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for line in outside_fences(path.read_text()):
        m = re.match(r"^#{1,6} (.*)$", line)
        if m:
            anchor, n = slug(m.group(1)), 1
            while anchor in found:  # GitHub numbers repeated headings
                anchor = f"{slug(m.group(1))}-{n}"
                n += 1
            found.add(anchor)
    return found


def links(path: pathlib.Path) -> list[str]:
    # Inline code is never a link; a link's text may be code: [`actions/pytest`](workflows.md#actionspytest).
    lines = [re.sub(r"`[^`]*`", "", line) for line in outside_fences(path.read_text())]
    return [target for line in lines for target in re.findall(r"\]\(([^)\s]+)\)", line)]


def broken(path: pathlib.Path) -> list[str]:
    problems = []
    for target in links(path):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no such heading")
    return problems


def test_the_markdown_files_are_found():
    names = {str(p.relative_to(ROOT)) for p in MARKDOWN}
    assert {"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "docs/workflows.md", "examples/README.md"} <= names


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: pathlib.Path) -> None:
    assert broken(path) == []


def test_the_link_check_fires_on_a_broken_link(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a.md").write_text(
        "# Title\n\n## Set-up: two commands\n\n[ok](#title) [bad](missing.md) [gone](#nowhere) `[code](x.md)`\n"
        "```\n[fenced](fenced.md)\n```\n"
    )
    assert links(tmp_path / "a.md") == ["#title", "missing.md", "#nowhere"]
    assert anchors(tmp_path / "a.md") == {"title", "set-up-two-commands"}
    assert broken(tmp_path / "a.md") == ["missing.md: no such file", "#nowhere: no such heading"]
    assert slug("`.github/workflows/ml-ci.yml`") == "githubworkflowsml-ciyml"


# Code and YAML that name a docs page, in messages, descriptions and comments: the page must exist (the hook manifest
# once sent users to a CI-integration page that did not).
NAMED_PAGE = re.compile(r"\bdocs/([a-z0-9_-]+\.md)(?:#([a-z0-9_-]+)|\s*\(([A-Z][\w ,:-]*)\))?")
SOURCES = [
    p
    for p in _files("*.py", "*.yml", "*.yaml", "*.sh", "*.toml", "*.json")
    if "fixtures" not in p.parts and not p.name.endswith(".schema.json")
]


def _named_pages() -> list[tuple[str, str, str | None]]:
    found = []
    for path in SOURCES:
        for m in NAMED_PAGE.finditer(path.read_text(errors="replace")):
            found.append((str(path.relative_to(ROOT)), m.group(1), m.group(2) or m.group(3)))
    return found


def test_every_docs_page_named_in_code_or_yaml_exists():
    named = _named_pages()
    assert any(source == ".pre-commit-hooks.yaml" for source, _, _ in named), "the manifest names its docs page"
    for source, page, section in named:
        target = ROOT / "docs" / page
        assert target.is_file(), f"{source} names docs/{page}, which does not exist"
        if section and section[0].islower():  # an anchor: docs/workflows.md#security
            assert section in anchors(target), f"{source}: docs/{page}#{section}: no such heading"
        elif section:  # a section by its title: docs/workflows.md (Security)
            titles = {
                line.lstrip("#").strip().lower() for line in outside_fences(target.read_text()) if line[:1] == "#"
            }
            assert section.lower() in titles, f"{source}: docs/{page} ({section}): no such section"


def test_the_docs_urls_that_init_writes_name_existing_pages():
    from ci_checks.commands import init

    pin = init.Pin("octo/ci-checks", "v0.1.0", "0.1.0")
    texts = [init.spec_text("ci_spec.py", pin), init.config_table("ci_spec.py:training_spec", pin)]
    texts.append(init.workflow_text(pin, branch="main"))
    urls = re.findall(r"https://github\.com/octo/ci-checks/blob/v0\.1\.0/([\w/.-]+\.md)", "\n".join(texts))
    assert len(urls) == 3, urls
    for url in urls:
        assert (ROOT / url).is_file(), url
