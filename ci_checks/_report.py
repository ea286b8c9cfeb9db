"""Results as data (a versioned JSON document) and the renderers: text, json, github."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ci_checks._errors import EXIT_FINDINGS, EXIT_OK, UserError

SCHEMA = "ci-checks/results"
SCHEMA_VERSION = 1
SEVERITIES = ("error", "warning", "notice")
STATUSES = ("pass", "warn", "fail", "skip")
GITHUB_MAX_ANNOTATIONS = 10  # GitHub shows at most 10 annotations of a kind per step


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
        report = cls(command=str(data.get("command", "")), subject=dict(data.get("subject", {})))
        report.created = str(data.get("created", report.created))
        for c in data.get("checks", []):
            result = CheckResult(
                check=c["check"],
                figures=dict(c.get("figures", {})),
                series={k: list(v) for k, v in c.get("series", {}).items()},
                summary=c.get("summary", ""),
                skipped=c.get("status") == "skip",
                duration_s=float(c.get("duration_s", 0.0)),
            )
            for f in c.get("findings", []):
                loc = f.get("location")
                result.findings.append(
                    Finding(
                        check=f.get("check", result.check),
                        severity=f["severity"],
                        message=f["message"],
                        location=None if not loc else Location(loc["file"], loc.get("line")),
                        details=dict(f.get("details", {})),
                    )
                )
            report.checks.append(result)
        return report


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


# ---------------------------------------------------------------- renderers

_ICONS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
_MD_ICONS = {"pass": ":white_check_mark:", "warn": ":warning:", "fail": ":x:", "skip": ":fast_forward:"}


def render_text(report: Report) -> str:
    """Render for a terminal: one line per check, one line per finding."""
    lines = []
    for c in report.checks:
        head = f"{_ICONS[c.status]:4}  {c.check:<20} {c.summary}".rstrip()
        lines.append(head + (f"  ({c.duration_s:.2f}s)" if c.duration_s >= 0.01 else ""))
        for f in c.findings:
            where = f"{f.location}: " if f.location else ""
            lines.append(f"      {where}{f.severity}: {f.message}")
    counts = {s: sum(c.status == s for c in report.checks) for s in STATUSES}
    total = sum(c.duration_s for c in report.checks) + float(report.subject.get("training_seconds", 0.0))
    lines.append(
        f"{report.command}: {report.status.upper()} - {counts['pass']} passed, {counts['warn']} warned, "
        f"{counts['fail']} failed, {counts['skip']} skipped in {total:.1f}s"
    )
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report) -> str:
    """Render workflow commands (annotations), most severe first, capped as GitHub shows them."""
    level = {"error": "error", "warning": "warning", "notice": "notice"}
    findings = [f for c in report.checks for f in c.findings]
    findings.sort(key=lambda f: SEVERITIES.index(f.severity))
    out = []
    for f in findings[:GITHUB_MAX_ANNOTATIONS]:
        props = [f"title={_escape_property('ci-checks ' + f.check)}"]
        if f.location:
            props.insert(0, f"file={_escape_property(f.location.file)}")
            if f.location.line:
                props.insert(1, f"line={f.location.line}")
        out.append(f"::{level[f.severity]} {','.join(props)}::{_escape_data(f.message)}")
    if len(findings) > GITHUB_MAX_ANNOTATIONS:
        out.append(f"::notice::{len(findings) - GITHUB_MAX_ANNOTATIONS} more findings are in the step summary")
    return "\n".join(out) + ("\n" if out else "") + render_text(report)


def render_markdown(report: Report) -> str:
    """Render the Markdown step summary: a headline, a table, and the findings."""
    lines = [
        f"### ci-checks {report.command}: {_MD_ICONS[report.status]} {report.status}",
        "",
        "| check | status | summary | time |",
        "|---|---|---|---|",
    ]
    for c in report.checks:
        summary = c.summary.replace("|", "\\|")
        lines.append(f"| {c.check} | {_MD_ICONS[c.status]} {c.status} | {summary} | {c.duration_s:.2f}s |")
    findings = [f for c in report.checks for f in c.findings if f.severity != "notice"]
    if findings:
        lines += ["", "<details><summary>Findings</summary>", ""]
        for f in findings:
            lines.append(f"- **{f.check}** ({f.severity}): {f.message}")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def emit(
    report: Report,
    *,
    fmt: str,
    output: str | None,
    stream: TextIO,
    github_env: Mapping[str, str] | None = None,
) -> None:
    """Write the report in the chosen format to the stream, and the JSON to --output."""
    env = os.environ if github_env is None else github_env
    if output:
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(render_json(report))
        except OSError as e:
            raise UserError(f"{output}: cannot write results ({e.strerror}); choose another --output path") from None
    if fmt == "json":
        if output is None:
            stream.write(render_json(report))
        else:
            stream.write(render_text(report))
    elif fmt == "github":
        stream.write(render_github(report))
        _append(env.get("GITHUB_STEP_SUMMARY"), render_markdown(report))
        outputs = f"status={report.status}\nexit-code={report.exit_code}\n"
        if output:
            outputs += f"results={output}\n"
        _append(env.get("GITHUB_OUTPUT"), outputs)
    else:
        stream.write(render_text(report))


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)


def merge_statuses(statuses: Sequence[str]) -> str:
    for s in ("fail", "warn", "pass"):
        if s in statuses:
            return s
    return "skip"
