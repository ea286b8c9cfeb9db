"""Release checks and notes for .github/workflows/release.yml (and for a maintainer, before pushing a tag).

  python scripts/release.py check vX.Y.Z   the tag agrees with pyproject.toml's version, CHANGELOG.md has a dated
                                           section for it, and every snippet in README.md and docs/ pins this tag
  python scripts/release.py notes vX.Y.Z   print that CHANGELOG.md section: the GitHub release's notes

Exit codes: 0 ready (or the notes were printed), 1 not ready (each reason on stderr), 2 usage.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
from collections.abc import Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
TAG = re.compile(r"v(?P<version>\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)")
# A section heading of CHANGELOG.md (Keep a Changelog): "## [0.1.0] - 2026-05-01".
SECTION = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?\s*$", re.M)
# A tag pin of this kit in a snippet: `ci-checks/.github/workflows/ml-ci.yml@v0.1.0`, `ci-checks@v0.1.0` (pip), and
# `rev: v0.1.0` under `repo: https://github.com/OWNER/ci-checks` (pre-commit).
PIN = re.compile(r"ci-checks(?:/[\w./-]+)?@(?P<ref>v\d[\w.]*)|repo: \S+/ci-checks\s*\n\s*rev: (?P<rev>v\d[\w.]*)")


def changelog(root: pathlib.Path) -> str:
    path = root / "CHANGELOG.md"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def version(root: pathlib.Path = ROOT) -> str:
    return str(tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def sections(text: str) -> dict[str, tuple[str | None, str]]:
    """Every CHANGELOG section: version -> (date, body without the heading)."""
    found = list(SECTION.finditer(text))
    out = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        out[m.group("version")] = (m.group("date"), text[m.end() : end].strip("\n"))
    return out


def snippet_pins(root: pathlib.Path = ROOT) -> list[tuple[str, str]]:
    """(file, ref) of every tag pin of the kit in README.md and docs/."""
    pins = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for m in PIN.finditer(path.read_text(encoding="utf-8")):
            pins.append((str(path.relative_to(root)), m.group("ref") or m.group("rev")))
    return pins


def problems(tag: str, root: pathlib.Path = ROOT) -> list[str]:
    """Why tag cannot be released from root; [] when it can."""
    m = TAG.fullmatch(tag)
    if not m:
        return [f"tag {tag!r}: expected vMAJOR.MINOR.PATCH, e.g. v0.1.0 (optionally a1, b1, rc1)"]
    wanted, found = m.group("version"), []
    if version(root) != wanted:
        found.append(f'pyproject.toml says version {version(root)}, the tag {tag}: set version = "{wanted}"')
    entry = sections(changelog(root)).get(wanted)
    if entry is None:
        found.append(f"CHANGELOG.md has no '## [{wanted}] - YYYY-MM-DD' section: move the Unreleased notes there")
    elif not entry[0]:
        found.append(f"CHANGELOG.md: the section [{wanted}] has no date: '## [{wanted}] - YYYY-MM-DD'")
    elif not entry[1].strip():
        found.append(f"CHANGELOG.md: the section [{wanted}] is empty")
    for file, ref in snippet_pins(root):
        if ref != tag:
            found.append(f"{file} pins {ref}, not {tag}: snippets name the tag this release creates")
    return found


def notes(tag: str, root: pathlib.Path = ROOT) -> str:
    m = TAG.fullmatch(tag)
    entry = sections(changelog(root)).get(m.group("version") if m else "")
    if entry is None:
        raise SystemExit(f"release.py: CHANGELOG.md has no section for {tag}")
    return entry[1].strip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["check", "notes"])
    parser.add_argument("tag", help="the release tag, e.g. v0.1.0")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    if args.action == "notes":
        try:
            sys.stdout.write(notes(args.tag, args.root))
        except SystemExit as e:
            print(e, file=sys.stderr)
            return 1
        return 0
    found = problems(args.tag, args.root)
    for problem in found:
        print(f"release.py: {problem}", file=sys.stderr)
    if not found:
        print(f"release.py: {args.tag} is ready: version, CHANGELOG.md section and snippet pins agree")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
