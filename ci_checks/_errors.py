"""The exit-code contract and the one place that maps failures to it."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Bad input from the user: exit 2 with one line that names the problem and the fix."""


@contextlib.contextmanager
def error_handler(*, debug: bool = False) -> Iterator[None]:
    """Turn exceptions raised inside the block into the documented exit codes."""
    try:
        yield
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"ci-checks: error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        print("ci-checks: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - the contract: any other failure is ours
        if debug:
            traceback.print_exc()
        print(
            f"ci-checks: internal error: {type(e).__name__}: {e} "
            "(rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERNAL) from None
