"""The metrics, plots and params files a dvc.yaml names, on either side; DVC itself only for what git cannot give
(templated paths, and base values of metrics DVC caches instead of committing)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ci_checks import _dvc
from ci_checks.compare.files import CurveSpec, FileSpec, Metric, read_dvc_yaml
from ci_checks.compare.sources.source import Context, Readings, read_curves, read_files
from ci_checks.compare.trees import GitTree, Tree


class DvcMetrics:
    name = "dvc"

    def read(self, head: Tree, base: Tree, ctx: Context) -> Readings:
        out = Readings()
        if not ctx.settings["dvc"]:
            return out
        specs: dict[str, FileSpec] = {}
        curves: dict[str, CurveSpec] = {}
        cached: set[str] = set()  # metrics DVC caches instead of git
        for side in (head, base):
            found = read_dvc_yaml(side)
            if found is None:
                continue
            for path, is_cached in found.metrics.items():
                specs.setdefault(path, FileSpec(path))
                if is_cached:
                    cached.add(path)
            for curve in found.plots:
                curves.setdefault(curve.path, curve)
            out.params += [p for p in found.params if p not in out.params]
            if found.templated and side is head:
                for path in _metric_paths(ctx.head_dir, ctx.log):
                    specs.setdefault(path, FileSpec(path))
        for spec in specs.values():
            read_files(head, base, spec, ctx, out)
        if isinstance(base, GitTree) and base.read("dvc.lock") is not None:
            # Metrics DVC caches (cache: true, its default) are not in git: only DVC can read their base values.
            missing = [p for p in specs if p in cached and not base.glob(p)]
            if missing:
                values = _base_values(ctx.head_dir, base.rev, missing, ctx.log)
                for name, (file, value) in values.items():
                    out.base.setdefault(name, Metric(name, file)).add(value)
                if values:
                    out.base_source = "dvc"
                else:
                    ctx.log(
                        f"base values of {', '.join(missing)} are in DVC's cache, not git, and DVC could not read "
                        f"them at {base.label}; run `dvc fetch` for that revision, or mark them cache: false in "
                        "dvc.yaml"
                    )
        read_curves(head, base, curves.values(), ctx, out)
        return out


def _metric_paths(head_dir: str, log: Callable[[str], None]) -> list[str]:
    """Metrics files of a templated dvc.yaml (foreach, matrix, ${vars}), as DVC resolves them."""
    shown = _dvc.run_json(["metrics", "show", "--json"], head_dir, log)
    if not isinstance(shown, Mapping):
        return []
    paths: list[str] = []
    for rev in shown.values():
        if isinstance(rev, Mapping):
            paths.extend(str(p) for p in (rev.get("data") or {}))
    return list(dict.fromkeys(paths))


def _base_values(head_dir: str, sha: str, files: Sequence[str], log: Callable[[str], None]) -> dict[str, Any]:
    """Base values of DVC-cached metrics files (not in git), from `dvc metrics diff`; flattened by DVC."""
    diff = _dvc.run_json(["metrics", "diff", "--json", "--all", sha, "--targets", *files], head_dir, log)
    values: dict[str, Any] = {}
    if isinstance(diff, Mapping):
        for file, keys in diff.items():
            for key, change in keys.items() if isinstance(keys, Mapping) else []:
                if isinstance(change, Mapping) and change.get("old") is not None:
                    values[f"{file}:{key}"] = (file, change["old"])
    return values
