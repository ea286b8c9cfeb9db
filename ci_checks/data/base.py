"""The base side of data drift: the base revision's config (its thresholds judge) and its data files, read from git
or, for DVC-tracked data, at the version that revision pins (dvc.api at that revision)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

from ci_checks._errors import UserError
from ci_checks.compare.base import Repo
from ci_checks.compare.trees import GitTree


def base_config(repo: Repo, sha: str, config_path: str | None, label: str) -> tuple[dict[str, Any] | None, str | None]:
    """[tool.ci-checks] of the base revision's copy of config_path, and a note when it cannot be used."""
    from ci_checks.compare.base_policy import read_config

    if config_path is None:
        return None, "no pyproject.toml here, so the base has none either"
    rel = os.path.relpath(os.path.abspath(config_path), repo.toplevel).replace(os.sep, "/")
    if rel.startswith("../"):
        return None, f"{config_path} is outside the repository, so the base has no version of it"
    tree = GitTree(repo.toplevel, sha, "", label=label)
    try:
        config = read_config(tree, rel, f"{rel} at {label}")
    except UserError as e:
        return None, f"the base's configuration is not valid for this version of ci-checks ({e}): the defaults decide"
    finally:
        tree.close()
    if config is None:
        return None, f"{rel} is not in {label}: the defaults decide"
    return config, None


def fetch_file(
    repo: Repo, sha: str, path: str, folder: str, *, label: str, log: Callable[[str], None]
) -> tuple[str | None, str]:
    """A copy of path (absolute, in the working tree) as the base revision has it, in folder; (None, why) when the
    base has no such file or DVC cannot get it. The second value says where the copy came from."""
    rel = os.path.relpath(os.path.abspath(path), repo.toplevel).replace(os.sep, "/")
    if rel.startswith("../"):
        return None, f"{path} is outside the repository"
    target = os.path.join(folder, f"{len(os.listdir(folder))}-{os.path.basename(path)}")
    tree = GitTree(repo.toplevel, sha, "", label=label)
    try:
        data = tree.read(rel)
    finally:
        tree.close()
    if data is not None:
        with open(target, "wb") as fh:
            fh.write(data)
        return target, "git"
    return _from_dvc(repo, sha, rel, target, label=label, log=log)


def _from_dvc(
    repo: Repo, sha: str, rel: str, target: str, *, label: str, log: Callable[[str], None]
) -> tuple[str | None, str]:
    try:
        import dvc.api
    except ImportError:
        return (
            None,
            f"{rel} is not in git at {label}, and dvc is not installed to read it (pip install 'ci-checks[dvc]')",
        )
    try:
        # The repository's top level and a path from it: DVC finds a project in a subfolder (a subrepo) itself.
        with dvc.api.open(rel, repo=repo.toplevel, rev=sha, mode="rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except Exception as e:  # noqa: BLE001 - dvc raises many kinds; each means "the base's copy is not here"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        log(f"dvc could not read {rel} at {label}: {first}")
        return (
            None,
            f"{rel} at {label} is neither in git nor readable through DVC ({first}); dvc fetch it or pass --base-stats",
        )
    return target, "dvc"
