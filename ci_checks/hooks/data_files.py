"""ci-checks-data-files: check the data files a commit changes against their [tool.ci-checks.data] expectations.

A staged file that is the path of a dataset declared in the nearest pyproject.toml above it is checked as
`ci-checks data-check` would (its pandera schema, labels, duplicates; leakage against the other splits of that
configuration). Files over --max-kb are left to CI (they belong in DVC: see ci-checks-large-files), and files no
dataset names pass. Runs without torch unless a dataset's spec imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ci_checks.hooks import report, run_hook

PROG = "ci-checks-data-files"
DEFAULT_MAX_KB = 5000


def datasets_of(filenames: Sequence[str], *, max_kb: float) -> tuple[dict[str, list[str]], list[str]]:
    """{pyproject.toml: [dataset names]} for the files that a dataset names, and the files skipped for their size."""
    from ci_checks.checks import default_settings
    from ci_checks.config import find_pyproject, load_config

    found: dict[str, list[str]] = {}
    skipped: list[str] = []
    configs: dict[str, dict[str, str]] = {}  # pyproject -> {absolute data path: dataset}
    for name in filenames:
        path = os.path.abspath(name)
        if not os.path.isfile(path):
            continue
        pyproject = find_pyproject(os.path.dirname(path))
        if pyproject is None:
            continue
        if pyproject not in configs:
            config = load_config(pyproject, defaults=default_settings())
            root = os.path.dirname(pyproject)
            declared = ((config.get("data") or {}).get("datasets")) or {}
            configs[pyproject] = {
                os.path.normpath(os.path.join(root, str(ds["path"]))): str(ds_name)
                for ds_name, ds in declared.items()
                if ds.get("path")
            }
        dataset = configs[pyproject].get(path)
        if dataset is None:
            continue
        if os.path.getsize(path) > max_kb * 1024:
            skipped.append(name)
            continue
        found.setdefault(pyproject, []).append(dataset)
    return found, skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Check staged data files against their expectations.")
    parser.add_argument("filenames", nargs="*", help="files to check (default: none)")
    parser.add_argument(
        "--max-kb",
        type=float,
        default=DEFAULT_MAX_KB,
        help=f"leave files larger than this to CI (default: {DEFAULT_MAX_KB})",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    args = parser.parse_args(argv)

    def body() -> int:
        from ci_checks._errors import UserError
        from ci_checks.checks import default_settings
        from ci_checks.config import load_config
        from ci_checks.data.runner import check_datasets
        from ci_checks.render import plain

        if not args.max_kb > 0:
            raise UserError(f"--max-kb must be a positive number of kilobytes, got {args.max_kb}")
        found, skipped = datasets_of(args.filenames, max_kb=args.max_kb)
        for name in skipped:
            print(f"{PROG}: {plain(name)} is over {args.max_kb:g} KB: left to data-check in CI", file=sys.stderr)
        errors = []
        for pyproject, names in found.items():
            config = load_config(pyproject, defaults=default_settings())
            checked = check_datasets(config, pyproject, sorted(set(names)), max_rows=None, quiet=True)
            for f in (f for c in checked.checks for f in c.findings):
                if f.severity == "error":
                    errors.append(plain(f.message))
                elif f.severity == "warning":
                    print(f"{PROG}: warning: {plain(f.message)}", file=sys.stderr)
        return report(PROG, errors)

    return run_hook(body, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
