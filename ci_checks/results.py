"""The results model: the versioned JSON document every command writes and every later step reads."""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ci_checks._errors import EXIT_FINDINGS, EXIT_INTERNAL, EXIT_OK, UserError

SCHEMA = "ci-checks/results"
SCHEMA_VERSION = 1
SEVERITIES = ("error", "warning", "notice")
STATUSES = ("pass", "warn", "fail", "skip")


class Kind(str, Enum):
    """What a check result in a document holds, as `figures["kind"]` records it (absent: a plain check)."""

    CHECK = "check"  # a training check, export parity, a golden suite, a replayed run
    METRIC = "metric"  # compare: one metric, base vs head (figures: MetricComparison)
    CURVE = "curve"  # compare: one curve file, base vs head (series "base:<y>", "head:<y>")
    TRAINING = "training"  # compare: steps-to-memorize of the base and head train-check results
    POLICY = "policy"  # compare: a [tool.ci-checks.metrics] policy that matched no metric
    RERUN = "rerun"  # rerun: one replayed run (ref, sha, device, returncode, seconds)
    DATA = "data"  # data-check / data-stats: one expectation or one dataset's drift against the base
    QUALITY = "quality"  # quality: one suite (slices, behavioural tests, calibration), maybe against the base


class Verdict(str, Enum):
    """A metric's verdict against the base branch, declared from the most to the least urgent (reports sort so)."""

    REGRESSED = "regressed"
    INVALID = "invalid"
    MISSING = "missing"
    CHANGED = "changed"  # beyond the noise, but no direction is known (or none applies): never counted as improved
    IMPROVED = "improved"
    NEW = "new"
    WITHIN_NOISE = "within-noise"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"  # not compared (e.g. a list of lists that is not declared per-class)

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


@dataclass(frozen=True)
class MetricComparison:
    """The figures of a metric result (Kind.METRIC): the base and head samples, the change and the evidence."""

    verdict: Verdict
    base: float | None = None  # mean of the base samples
    head: float | None = None
    base_samples: tuple[float, ...] = ()
    head_samples: tuple[float, ...] = ()
    delta: float | None = None  # head - base
    relative: float | None = None  # delta / |base|
    test: str | None = None  # welch | bootstrap | tolerance
    p_value: float | None = None
    ci: tuple[float, float] | None = None  # confidence interval of delta
    rel_tol: float | None = None
    direction: str | None = None  # higher | lower | unknown | none
    direction_guessed: bool = False
    gating: bool = True  # can fail the pull request (False: report-only)
    p_adjusted: float | None = None  # the p-value after the correction for many metrics

    @classmethod
    def from_figures(cls, figures: Mapping[str, Any]) -> MetricComparison | None:
        """Read a metric result's figures; None when they hold no known verdict."""
        try:
            verdict = Verdict(figures.get("verdict"))
        except ValueError:
            return None
        ci = figures.get("ci")
        return cls(
            verdict=verdict,
            base=_number_or_none(figures.get("base")),
            head=_number_or_none(figures.get("head")),
            base_samples=tuple(_numbers(figures.get("base_samples"))),
            head_samples=tuple(_numbers(figures.get("head_samples"))),
            delta=_number_or_none(figures.get("delta")),
            relative=_number_or_none(figures.get("relative")),
            test=figures.get("test") if isinstance(figures.get("test"), str) else None,
            p_value=_number_or_none(figures.get("p_value")),
            ci=(
                (float(ci[0]), float(ci[1]))
                if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_number(v) for v in ci)
                else None
            ),
            rel_tol=_number_or_none(figures.get("rel_tol")),
            direction=figures.get("direction") if isinstance(figures.get("direction"), str) else None,
            direction_guessed=figures.get("direction_guessed") is True,
            gating=figures.get("gating") is not False,
            p_adjusted=_number_or_none(figures.get("p_adjusted")),
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_or_none(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _numbers(value: Any) -> list[float]:
    return [float(v) for v in value if _is_number(v)] if isinstance(value, (list, tuple)) else []


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Finding:
    """One observation of a check: what is wrong, where, and the numbers behind it."""

    check: str
    severity: str
    message: str
    location: Location | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckResult:
    """The verdict of one check with its findings and figures."""

    check: str
    findings: list[Finding] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    summary: str = ""
    skipped: bool = False
    duration_s: float = 0.0

    @property
    def kind(self) -> Kind:
        try:
            return Kind(self.figures.get("kind", "check"))
        except ValueError:  # a kind from a newer ci-checks: shown as a plain check
            return Kind.CHECK

    @property
    def metric(self) -> MetricComparison | None:
        """The metric comparison this result holds (Kind.METRIC), else None."""
        return MetricComparison.from_figures(self.figures) if self.kind is Kind.METRIC else None

    @property
    def status(self) -> str:
        if self.skipped:
            return "skip"
        severities = {f.severity for f in self.findings}
        if "error" in severities:
            return "fail"
        if "warning" in severities:
            return "warn"
        return "pass"

    def add(
        self,
        severity: str,
        message: str,
        *,
        location: Location | None = None,
        **details: Any,
    ) -> Finding:
        """Record a finding of this check."""
        finding = Finding(self.check, severity, message, location, _jsonable(details))
        self.findings.append(finding)
        return finding


@dataclass
class Report:
    """Everything one ci-checks command found: the document later steps consume."""

    command: str
    checks: list[CheckResult] = field(default_factory=list)
    subject: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def status(self) -> str:
        return merge_statuses([c.status for c in self.checks])

    @property
    def exit_code(self) -> int:
        if self.subject.get("internal_errors"):
            return EXIT_INTERNAL  # a bug of the kit: the report is still written, with the other checks' verdicts
        return EXIT_FINDINGS if self.status == "fail" else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        from ci_checks import __version__

        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "ci-checks", "version": __version__},
            "command": self.command,
            "created": self.created,
            "status": self.status,
            "exit_code": self.exit_code,
            "subject": _jsonable(self.subject),
            "environment": {"python": platform.python_version(), "platform": platform.platform()},
            "checks": [
                {
                    "check": c.check,
                    "status": c.status,
                    "summary": c.summary,
                    "duration_s": round(c.duration_s, 4),
                    "figures": _jsonable(c.figures),
                    "series": _jsonable(c.series),
                    "findings": [
                        {
                            "check": f.check,
                            "severity": f.severity,
                            "message": f.message,
                            "location": (
                                None if f.location is None else {"file": f.location.file, "line": f.location.line}
                            ),
                            "details": f.details,
                        }
                        for f in c.findings
                    ],
                }
                for c in self.checks
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "results") -> Report:
        """Read a results document back; raise UserError naming the problem."""
        if data.get("schema") != SCHEMA:
            raise UserError(f"{source}: not a ci-checks results file (schema is {data.get('schema')!r})")
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise UserError(
                f"{source}: results schema version {version!r} is newer than this ci-checks "
                f"understands ({SCHEMA_VERSION}); upgrade ci-checks"
            )
        checks = data.get("checks", [])
        well_formed = isinstance(checks, list) and all(
            isinstance(c, Mapping) and isinstance(c.get("check"), str) and isinstance(c.get("findings", []), list)
            for c in checks
        )
        if not well_formed or not isinstance(data.get("subject", {}), Mapping):
            raise UserError(f"{source}: malformed results document (checks must be a list of objects); regenerate it")
        try:
            return cls._from_checked(data, checks)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{source}: malformed results document ({type(e).__name__}: {e}); regenerate it") from None

    @classmethod
    def _from_checked(cls, data: Mapping[str, Any], checks: list[Any]) -> Report:
        report = cls(command=str(data.get("command", "")), subject=dict(data.get("subject", {})))
        report.created = str(data.get("created", report.created))
        for c in checks:
            if c.get("status", "pass") not in STATUSES:
                raise ValueError(f"check {c['check']!r} has status {c.get('status')!r}, not one of {STATUSES}")
            result = CheckResult(
                check=c["check"],
                figures=dict(c.get("figures", {})),
                series={k: list(v) for k, v in c.get("series", {}).items()},
                summary=c.get("summary", ""),
                skipped=c.get("status") == "skip",
                duration_s=_number(c.get("duration_s", 0.0)),
            )
            for f in c.get("findings", []):
                loc = f.get("location")
                result.findings.append(
                    Finding(
                        check=f.get("check", result.check),
                        severity=f["severity"],
                        message=f["message"],
                        location=None if not loc else Location(str(loc["file"]), loc.get("line")),
                        details=dict(f.get("details", {})),
                    )
                )
            report.checks.append(result)
        return report


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"duration_s must be a number, got {value!r}")
    return float(value)


def load_report(path: str) -> Report:
    """Load a results JSON file written with --output."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise UserError(f"{path}: results file not found; write it with --format json --output {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; pass the results JSON files in it (e.g. {path}/*.json)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it ({e}); pass a results JSON file") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); regenerate it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object at the top level")
    return Report.from_dict(data, source=path)


def _jsonable(value: Any) -> Any:
    """Make figures JSON-safe: floats that are not finite become strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return str(value)
    return _jsonable(as_float)


def merge_statuses(statuses: Sequence[str]) -> str:
    for s in ("fail", "warn", "pass"):
        if s in statuses:
            return s
    return "skip"
