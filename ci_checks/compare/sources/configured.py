"""The metrics files, curves and params files listed under [tool.ci-checks.compare] (files, curves, params)."""

from __future__ import annotations

from ci_checks._errors import UserError
from ci_checks.compare.files import CurveSpec, FileSpec
from ci_checks.compare.sources.source import Context, Readings, has_base, read_curves, read_files
from ci_checks.compare.trees import Tree


class ConfiguredFiles:
    name = "files"

    def read(self, head: Tree, base: Tree, ctx: Context) -> Readings:
        out = Readings(params=list(ctx.settings["params"]))
        curves: dict[str, CurveSpec] = {}
        for entry in ctx.settings["files"]:
            spec = FileSpec(entry["path"], tuple(entry["columns"]), entry["rows"])
            dvclive = spec.path.rstrip("/")
            if head.is_dir(dvclive) or base.is_dir(dvclive):  # a dvclive folder: its step curves come along
                for side in (head, base):
                    for tsv in side.glob(f"{dvclive}/plots/metrics/**/*.tsv"):
                        curves.setdefault(tsv, CurveSpec(tsv, "step"))
            found = read_files(head, base, spec, ctx, out)
            if found == [] and not any(m.file == spec.path for m in ctx.saved_base.values()):
                raise UserError(
                    f"[tool.ci-checks.compare] files: '{spec.path}' matches no file in {ctx.head_dir}"
                    + (f" or at {base.label}" if has_base(base) else "")
                    + "; fix the path, or run the step that writes it first"
                )
        for entry in ctx.settings["curves"]:
            curves[entry["path"]] = CurveSpec(entry["path"], entry["x"], tuple(entry["y"]))
        read_curves(head, base, curves.values(), ctx, out)
        return out
