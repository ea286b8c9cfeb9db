"""ci-checks-validate-config: validate the [tool.ci-checks] table of each pyproject.toml given.

The same schema and validator as every ci-checks command (ci_checks.config.load_config), so it rejects whatever a
command would: unknown keys (with the closest valid name), wrong types and out-of-range values in every table,
without importing torch or the user's code. A `spec = "FILE.py:FUNCTION"` that names a missing file is reported too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ci_checks._errors import UserError
from ci_checks.hooks import report, run_hook

PROG = "ci-checks-validate-config"


def validate(path: str) -> list[str]:
    """Problems with the [tool.ci-checks] table of one pyproject.toml; empty when it is valid."""
    from ci_checks.config import load_config
    from ci_checks.checks import default_settings

    try:
        config = load_config(path, defaults=default_settings())
    except UserError as e:
        return [str(e)]
    spec = config.get("spec")
    if isinstance(spec, str):
        file, colon, _func = spec.rpartition(":")
        if colon and file.endswith(".py"):
            target = os.path.join(os.path.dirname(os.path.abspath(path)), file)
            if not os.path.isfile(target):
                return [
                    f"{path} [tool.ci-checks]: spec {spec!r} names {file}, which does not exist next to "
                    f"{os.path.basename(path)}; fix the path (it is relative to that directory)"
                ]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Validate [tool.ci-checks] in pyproject.toml files.")
    parser.add_argument("filenames", nargs="*", metavar="pyproject.toml", help="files to check (default: none)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    args = parser.parse_args(argv)

    def body() -> int:
        problems = [p for f in args.filenames if os.path.basename(f) == "pyproject.toml" for p in validate(f)]
        return report(PROG, problems)

    return run_hook(body, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
