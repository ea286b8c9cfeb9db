"""The kit's pre-commit hooks: one module per hook, each with main(argv) -> int and a console script of the hook's id.

Exit codes follow the kit's contract: 0 clean, 1 findings, 2 usage error or bad input, 3 internal error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from ci_checks._errors import EXIT_USAGE, error_handler


def run_hook(body: Callable[[], int], *, debug: bool = False) -> int:
    """Run a hook body under the kit's error handler and return its exit code instead of exiting."""
    try:
        with error_handler(debug=debug):
            return body()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    return EXIT_USAGE  # pragma: no cover - error_handler always exits or returns above


def report(prog: str, problems: Sequence[str]) -> int:
    """Print one line per problem on stderr; 1 when there are any, else 0."""
    for problem in problems:
        print(f"{prog}: {problem}", file=sys.stderr)
    return 1 if problems else 0
