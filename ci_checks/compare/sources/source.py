"""What a metric source is: something that reads metrics (and curves) from the head and base trees."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ci_checks.compare.files import Curve, CurveSpec, FileSpec, Metric, read_curve, read_metrics
from ci_checks.compare.trees import EmptyTree, Tree

if TYPE_CHECKING:
    from ci_checks.results import CheckResult


@dataclass
class Context:
    """Everything a source may use besides the two trees."""

    head_dir: str  # the compared folder of the working tree
    settings: Mapping[str, Any]  # [tool.ci-checks.compare], validated, defaults filled in
    base_name: str  # how messages name the base ("main")
    saved_base: Mapping[str, Metric]  # base metrics from --base-metrics-json ({} when the base is git)
    base_results: str | None  # train-check results of the base and of the head (--base/--head-results)
    head_results: str | None
    log: Callable[[str], None]
    claimed: dict[str, set[str]] = field(default_factory=lambda: {"metrics": set(), "curve": set()})

    def claim(self, kind: Literal["metrics", "curve"], path: str) -> bool:
        """True the first time a file is claimed as "metrics" or "curve": the first source in SOURCES reads it."""
        if path in self.claimed[kind]:
            return False
        self.claimed[kind].add(path)
        return True


CurvePair = tuple[str, Curve | None, Curve | None]  # path, head, base


@dataclass
class Readings:
    """What one source found."""

    head: dict[str, Metric] = field(default_factory=dict)
    base: dict[str, Metric] = field(default_factory=dict)
    curves: list[CurvePair] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # the metrics files it looked for, found or not
    params: list[str] = field(default_factory=list)  # params files whose changes the report lists
    checks: list[CheckResult] = field(default_factory=list)  # results that are not one metric's
    base_source: str | None = None  # where base values came from when not (only) git, e.g. "dvc"


class Source(Protocol):
    """A metric source: one module under ci_checks/compare/sources/ and one line in SOURCES."""

    name: str

    def read(self, head: Tree, base: Tree, ctx: Context) -> Readings:
        """Read this source's metrics and curves from both sides (base is an EmptyTree without a baseline)."""
        ...


def has_base(base: Tree) -> bool:
    return not isinstance(base, EmptyTree)


def read_files(head: Tree, base: Tree, spec: FileSpec, ctx: Context, into: Readings) -> list[str] | None:
    """Read one metrics file (or glob) on both sides into `into`; return the files found.

    None when an earlier source already reads it, so that no file counts twice.
    """
    if not ctx.claim("metrics", spec.path):
        return None
    into.expected.append(spec.path)
    found = read_metrics(head, spec, into.head)
    if has_base(base):
        found += read_metrics(base, spec, into.base)
    return found


def read_curves(head: Tree, base: Tree, specs: Iterable[CurveSpec], ctx: Context, into: Readings) -> None:
    """Read the curves no earlier source claimed, on both sides."""
    for spec in specs:
        if ctx.claim("curve", spec.path):
            into.curves.append((spec.path, read_curve(head, spec), read_curve(base, spec) if has_base(base) else None))
