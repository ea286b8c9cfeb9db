"""ci-checks-dvc-outputs: refuse DVC-tracked outputs that are also committed to git.

Reads every dvc.yaml (stage outs, metrics and plots) and *.dvc file in the git index and reports each indexed file
that is, or lies under, an output DVC caches. Outputs declared with `cache: false` are meant to be in git and are
skipped, and so are templated paths (`${...}`) that cannot be resolved without DVC.
"""

from __future__ import annotations

import argparse
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from ci_checks import _git
from ci_checks._errors import UserError
from ci_checks.hooks import report, run_hook

PROG = "ci-checks-dvc-outputs"
STAGE_OUTPUT_KEYS = ("outs", "metrics", "plots")
IN_A_REPO = "run the hook inside a git repository"


class Output(NamedTuple):
    path: str  # repository-relative, POSIX separators
    declared_in: str  # the dvc.yaml or .dvc file
    stage: str | None


def _load_yaml(path: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise UserError(
            "PyYAML is needed to read DVC files; pip install pyyaml (the pre-commit hook installs it)"
        ) from None
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({e}); fix the file") from None


def _entries(items: Any) -> Iterator[tuple[str, bool]]:
    """(path, cached) for each output entry: a string, or a one-key mapping {path: {cache: false, ...}}."""
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, str):
            yield item, True
        elif isinstance(item, Mapping):
            for path, options in item.items():
                cache = options.get("cache", True) if isinstance(options, Mapping) else True
                yield str(path), cache is not False


def _join(*parts: str) -> str:
    return posixpath.normpath(posixpath.join(*parts))


def outputs_of(dvc_file: str, root: str) -> list[Output]:
    """The cached outputs declared by one dvc.yaml or .dvc file (a repository-relative path)."""
    data = _load_yaml(posixpath.join(root, dvc_file))
    if not isinstance(data, Mapping):
        return []
    base = posixpath.dirname(dvc_file)
    found = []
    if dvc_file.endswith(".dvc"):
        for out in data.get("outs") or []:
            if isinstance(out, Mapping) and isinstance(out.get("path"), str) and out.get("cache", True) is not False:
                found.append(Output(_join(base, out["path"]), dvc_file, None))
        return found
    stages = data.get("stages")
    if not isinstance(stages, Mapping):
        return []
    for name, stage in stages.items():
        if not isinstance(stage, Mapping):
            continue
        stage = stage.get("do", stage)  # foreach/matrix stages keep their body under `do`
        if not isinstance(stage, Mapping):
            continue
        wdir = stage.get("wdir", ".")
        if not isinstance(wdir, str) or "${" in wdir:
            continue
        for key in STAGE_OUTPUT_KEYS:
            for path, cached in _entries(stage.get(key)):
                if cached and "${" not in path:
                    found.append(Output(_join(base, wdir, path), dvc_file, str(name)))
    return found


def committed_outputs(root: str) -> list[str]:
    """One message per file in the git index that is (or is inside) a cached DVC output."""
    indexed = [p for p in _git.output(["ls-files", "-z"], root, hint=IN_A_REPO).split("\0") if p]
    dvc_files = [p for p in indexed if posixpath.basename(p) == "dvc.yaml" or p.endswith(".dvc")]
    outputs = [o for f in dvc_files for o in outputs_of(f, root)]
    problems = []
    for path in indexed:
        for out in outputs:
            if path == out.path or path.startswith(out.path.rstrip("/") + "/"):
                where = f"stage '{out.stage}' in {out.declared_in}" if out.stage else out.declared_in
                problems.append(
                    f"{path} is committed to git but DVC caches it (output '{out.path}' of {where}); "
                    f"untrack it: git rm -r --cached '{path}' and commit, and keep it in .gitignore"
                )
                break
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Refuse DVC-tracked outputs that are committed to git.")
    parser.add_argument("filenames", nargs="*", help="ignored: the whole git index is checked")
    parser.add_argument("--repo", metavar="DIR", help="inside the git repository to check (default: working directory)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    args = parser.parse_args(argv)

    def body() -> int:
        root = _git.toplevel(args.repo, hint=IN_A_REPO)
        return report(PROG, committed_outputs(root))

    return run_hook(body, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
