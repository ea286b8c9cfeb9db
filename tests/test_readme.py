"""The docs stay true: every check, setting, configuration key and exit code is on the page that documents it, every
subcommand has its page, the README stays a front door, and .ci/run runs the README's two set-up commands. (Links:
tests/test_docs_links.py; the README's workflow: tests/test_workflows.py; its pins: tests/test_release.py.)"""

from __future__ import annotations

import pathlib
import re

from ci_checks._errors import EXIT_FINDINGS, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ci_checks.checks import CHECKS, default_settings

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *PAGES]
# Subcommands documented on the page of the capability they belong to; every other one has a page of its own name.
PAGE_OF = {"comment": "report", "golden": "export-parity", "data-check": "data", "data-stats": "data"}


def page(name: str) -> str:
    return (DOCS / f"{name}.md").read_text()


def test_every_check_is_in_the_checks_tables() -> None:
    for text, where in ((page("train-check"), "docs/train-check.md"), (README, "README.md")):
        for name in CHECKS:
            assert re.search(rf"^\| `{name}` \|", text, re.M), f"{where} lacks {name}"


def test_every_setting_is_in_the_configuration_reference_with_its_default() -> None:
    text = page("train-check") + page("configuration")
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| `([a-z0-9-]+)`(?:, `([a-z0-9-]+)`)? \| ([^|]+) \|", text, re.M)
    documented = {(check, key): default.strip() for check, k1, k2, default in rows for key in (k1, k2) if key}
    for check, settings in default_settings().items():
        for key, default in settings.items():
            assert (check, key) in documented, f"{check}.{key} missing from docs/train-check.md"
            shown = documented[(check, key)]
            if default is None:
                assert shown == "none", (check, key, shown)
            else:
                assert str(default) in shown, (check, key, default, shown)


def test_every_configuration_key_and_table_is_documented() -> None:
    from ci_checks.config import schema

    config = page("configuration")
    owners = {
        "compare": "compare",
        "metrics": "compare",
        "rerun": "rerun",
        "golden": "export-parity",
        "rollback": "rollback",
        "score": "score",
        "quality": "quality",
        "data": "data",
    }
    for key, node in schema().fields.items():
        if key in CHECKS:
            continue  # a check's settings: the test above
        if key not in owners:
            assert re.search(rf"^\| `{key}` \|", config, re.M), f"docs/configuration.md lacks the key {key}"
            continue
        assert f"`[tool.ci-checks.{key}]`" in config, f"docs/configuration.md lacks [tool.ci-checks.{key}]"
        table = getattr(node, "value", node)  # [tool.ci-checks.metrics."NAME"]: a map of policy tables
        for name in getattr(table, "fields", {}):
            assert f"`{name}`" in page(owners[key]), f"docs/{owners[key]}.md lacks {key}.{name}"


def test_exit_codes_are_documented() -> None:
    text = page("results")
    for code in (EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED):
        assert re.search(rf"^\| {code} \|", text, re.M), code


def test_every_subcommand_has_its_page() -> None:
    from ci_checks.commands import COMMANDS

    for command in COMMANDS:
        name = PAGE_OF.get(command, command)
        assert (DOCS / f"{name}.md").is_file(), f"ci-checks {command}: no docs/{name}.md"
        assert f"ci-checks {command}" in page(name), f"docs/{name}.md does not name `ci-checks {command}`"


def test_readme_links_every_docs_page() -> None:
    for path in [*PAGES, ROOT / "CONTRIBUTING.md"]:
        assert f"]({path.relative_to(ROOT)})" in README, f"README.md does not link {path.relative_to(ROOT)}"


def test_readme_stays_a_front_door() -> None:
    # Reference material belongs in docs/; the README is what it is, the two commands, a first use, one snippet per
    # use and the map (about 15 KB at most, like black's and pre-commit-hooks').
    assert len(README.encode()) <= 15 * 1024
    headings = re.findall(r"^## (.*)$", README, re.M)
    for section in ("Try it: two commands", "Use it in your repository", "One snippet per use", "Compare against main"):
        assert section in headings, f"README.md lacks the section {section!r}"
    assert headings.index("Try it: two commands") < headings.index("Use it in your repository")
    for use in ("**The whole pipeline**", "**One action on its own**", "**Pre-commit hooks**", "**Your test suite**"):
        assert use in README, use


def test_readme_states_the_exit_codes() -> None:
    line = " ".join(README.split("## Exit codes", 1)[1].split("\n## ", 1)[0].split())
    for code in (EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED):
        assert re.search(rf"\b{code} ", line), code


def test_docs_name_no_private_module() -> None:
    for path in MARKDOWN:
        found = re.findall(r"ci_checks\._\w+", path.read_text())
        assert not found, f"{path.relative_to(ROOT)} names private modules {found}: document the public ones"


def test_ci_runs_the_readme_commands() -> None:
    found = re.search(r"```bash\n# 1\..*?\n(.*?)\n\n# 2\..*?\n(.*?)\n```", README, re.S)
    assert found, "the README's two set-up commands"
    setup, tests = found.groups()
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    # Verbatim, each on a line of its own, command 1 before command 2 and command 2 last: a green CI is a working
    # README, with nothing installed on the side before the README's own install.
    assert setup.strip() in lines and tests.strip() in lines, ".ci/run must run the README's commands verbatim"
    assert lines.index(setup.strip()) < lines.index(tests.strip()) == len(lines) - 1
    before = [line for line in lines[: lines.index(setup.strip())] if line.strip() and not line.startswith("#")]
    assert all("pip install" not in line for line in before), "nothing may be installed before the README's install"


def _sample(after: str) -> list[str]:
    """The lines of the README's first plain code block after the sentence that ends with `after`."""
    block = re.search(re.escape(after) + r".*?```\n(.*?)```", README, re.S)
    assert block, after
    return block.group(1).splitlines()


def _normalised(lines: list[str]) -> list[str]:
    # Durations vary from run to run, and slow checks show theirs; everything else is what a user sees.
    lines = [re.sub(r"\s*\(\d+(\.\d+)?s\)$", "", line) for line in lines]
    process = r" \(process \d+(\.\d+)?s, with start-up and imports\)$"
    lines = [re.sub(process, " (process time)", line) for line in lines]
    return [re.sub(r" in \d+(?:\.\d+)?s( \(process time\))?$", r" in (time)\1", line).rstrip() for line in lines]


def test_the_readme_shows_what_train_check_prints(capsys) -> None:
    from ci_checks.main import main

    assert main(["train-check", "--spec", str(ROOT / "examples" / "ci_spec.py") + ":training_spec"]) == 0
    printed = _normalised(capsys.readouterr().out.replace(str(ROOT) + "/", "").splitlines())
    assert _normalised(_sample("prints one line per check:")) == printed
    assert main(["train-check", "--spec", "examples/buggy_spec.py:training_spec"]) == 1
    printed = _normalised(capsys.readouterr().out.splitlines())
    for line in _normalised(_sample("test alone would pass it:")):
        assert line in printed, f"README.md shows a line train-check no longer prints: {line}"
