"""The base revision's side of `ci-checks quality --base`: evaluate a quality spec and write the per-example results.

Run by the command as `python -m ci_checks.quality.worker --spec REF --out FILE.npz [--suites-dir DIR]` inside a
worktree of the base commit. Exit codes as the CLI's: 0 written, 2 the spec is bad, 3 a bug of the kit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ci_checks._errors import EXIT_OK, error_handler, guard_process_exits, interrupt_on_signals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ci_checks.quality.worker")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--suites-dir")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    try:
        with interrupt_on_signals(), error_handler(debug=args.debug), guard_process_exits():
            from ci_checks.engine.usercode import UserCodeError
            from ci_checks.quality.evaluate import evaluate, save
            from ci_checks.quality.spec import load_quality_spec
            from ci_checks._errors import UserError

            import torch

            torch.set_num_threads(max(1, args.threads))
            spec = load_quality_spec(args.spec)
            try:
                evaluation = evaluate(spec, suites_dir=args.suites_dir, log=lambda m: print(m, file=sys.stderr))
            except UserCodeError as e:
                raise UserError(f"{spec.where}: {e}") from None
            save(evaluation, args.out)
            return EXIT_OK
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    return EXIT_OK  # pragma: no cover


if __name__ == "__main__":
    raise SystemExit(main())
