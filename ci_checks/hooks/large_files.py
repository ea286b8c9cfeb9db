"""ci-checks-large-files: refuse large model and data files that belong in DVC, not in git.

A file with a model or data suffix (weights, checkpoints, arrays, tables) over --max-kb, or any file over
--max-kb-any, is refused with the command that moves it to DVC. DVC's own pointer files are always allowed.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
from collections.abc import Sequence

from ci_checks.hooks import report, run_hook

PROG = "ci-checks-large-files"
DEFAULT_MAX_KB = 500
DEFAULT_MAX_KB_ANY = 5000
MODEL_AND_DATA_SUFFIXES = (
    # weights and checkpoints
    ".pt",
    ".pth",
    ".ckpt",
    ".safetensors",
    ".bin",
    ".onnx",
    ".pb",
    ".tflite",
    ".h5",
    ".hdf5",
    ".keras",
    ".joblib",
    ".pkl",
    ".pickle",
    ".msgpack",
    ".gguf",
    ".mlmodel",
    ".engine",
    ".trt",
    # arrays and tables
    ".npy",
    ".npz",
    ".parquet",
    ".feather",
    ".arrow",
    ".csv",
    ".tsv",
    ".jsonl",
    ".tfrecord",
    ".lmdb",
    ".zarr",
    # archives of either
    ".zip",
    ".tar",
    ".gz",
    ".tgz",
    ".xz",
    ".zst",
    ".7z",
)
ALWAYS_ALLOWED = ("*.dvc", "dvc.lock", "dvc.yaml", ".dvcignore")


def _suffix_matches(path: str, suffixes: Sequence[str]) -> bool:
    lower = path.lower()
    return any(lower.endswith(s) for s in suffixes)


def find_large_files(
    paths: Sequence[str],
    *,
    max_kb: int = DEFAULT_MAX_KB,
    max_kb_any: int = DEFAULT_MAX_KB_ANY,
    suffixes: Sequence[str] = MODEL_AND_DATA_SUFFIXES,
    allow: Sequence[str] = (),
) -> list[str]:
    """One message per file that should be tracked with DVC instead of git."""
    problems = []
    for path in paths:
        name = os.path.basename(path)
        if any(fnmatch.fnmatch(name, p) for p in ALWAYS_ALLOWED) or any(fnmatch.fnmatch(path, p) for p in allow):
            continue
        try:
            size_kb = os.path.getsize(path) / 1024
        except OSError:  # deleted or a broken link: nothing is added
            continue
        model_or_data = _suffix_matches(path, suffixes)
        limit = max_kb if model_or_data else max_kb_any
        if size_kb > limit:
            kind = "a model or data file" if model_or_data else "a large file"
            problems.append(
                f"{path} ({size_kb:,.0f} KB) is {kind} over the {limit:,} KB limit; track it with DVC instead of git: "
                f"git rm --cached '{path}' && dvc add '{path}' (or list it with --allow if it must be in git)"
            )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Refuse model and data files that belong in DVC.")
    parser.add_argument("filenames", nargs="*", help="files to check (pre-commit passes the staged ones)")
    parser.add_argument(
        "--max-kb",
        type=int,
        default=DEFAULT_MAX_KB,
        help="limit for files with a model or data suffix, in KB (default: %(default)s)",
    )
    parser.add_argument(
        "--max-kb-any",
        type=int,
        default=DEFAULT_MAX_KB_ANY,
        help="limit for any other file, in KB (default: %(default)s)",
    )
    parser.add_argument(
        "--suffixes",
        help="comma-separated model/data suffixes, replacing the defaults "
        f"(default: {','.join(MODEL_AND_DATA_SUFFIXES)})",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="GLOB",
        help="path pattern that may be committed whatever its size (repeatable; default: none)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    args = parser.parse_args(argv)
    if args.max_kb <= 0 or args.max_kb_any <= 0:
        parser.error("--max-kb and --max-kb-any must be positive")
    suffixes = MODEL_AND_DATA_SUFFIXES
    if args.suffixes is not None:
        suffixes = tuple(
            s if s.startswith(".") else "." + s for s in (p.strip().lower() for p in args.suffixes.split(",")) if s
        )

    def body() -> int:
        return report(
            PROG,
            find_large_files(
                args.filenames, max_kb=args.max_kb, max_kb_any=args.max_kb_any, suffixes=suffixes, allow=args.allow
            ),
        )

    return run_hook(body, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
