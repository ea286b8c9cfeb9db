"""The README stays true: every check, setting and exit code is documented; .ci/run runs its commands."""

from __future__ import annotations

import pathlib
import re

from ci_checks._errors import EXIT_FINDINGS, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ci_checks.checks import CHECKS, default_settings

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_check_is_in_the_checks_table() -> None:
    for name in CHECKS:
        assert re.search(rf"^\| `{name}` \|", README, re.M), name


def test_every_setting_is_in_the_configuration_reference_with_its_default() -> None:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| `([a-z0-9-]+)`(?:, `([a-z0-9-]+)`)? \| ([^|]+) \|", README, re.M)
    documented = {(check, key): default.strip() for check, k1, k2, default in rows for key in (k1, k2) if key}
    for check, settings in default_settings().items():
        for key, default in settings.items():
            assert (check, key) in documented, f"{check}.{key} missing from the README"
            shown = documented[(check, key)]
            if default is None:
                assert shown == "none", (check, key, shown)
            else:
                assert str(default) in shown, (check, key, default, shown)


def test_exit_codes_are_documented() -> None:
    for code in (EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED):
        assert re.search(rf"^\| {code} \|", README, re.M), code


def test_ci_runs_the_readme_commands() -> None:
    found = re.search(r"```bash\n# 1\..*?\n(.*?)\n\n# 2\..*?\n(.*?)\n```", README, re.S)
    assert found, "the README's two set-up commands"
    setup, tests = found.groups()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.strip() in ci
    install = setup.split(" && ")[1]
    assert install.replace('"', "") in ci.replace('"', "").replace("--quiet --disable-pip-version-check ", "")
