"""Render a results document: text for a terminal, JSON, GitHub workflow commands and the step summary.

Names, params, file contents and messages that quote them come from the pull request: they are data. This module
is the one place that makes them inert: plain() keeps them on one line (a name with a newline cannot start a line
of its own, so it can never forge a workflow command such as ``::error``), md_text() and md_code() escape them for
GitHub Markdown (no live mention, issue reference, link, image or HTML; no broken code span, table or fence).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import TextIO

from ci_checks._errors import UserError
from ci_checks.results import SEVERITIES, STATUSES, Report

GITHUB_MAX_ANNOTATIONS = 10  # GitHub shows at most 10 annotations of a kind per step

_ICONS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
STATUS_ICONS = {"pass": ":white_check_mark:", "warn": ":warning:", "fail": ":x:", "skip": ":fast_forward:"}


# Line breaks (any a terminal, the runner or a browser honours), other control characters and the bidirectional
# overrides that make text display other than it reads.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r"}
# Backslash-escaped in Markdown text: what could start emphasis, code, a link, an image, HTML, an entity, a table
# cell or math. "#" and "@" need more: GitHub links "#12" and "@user" in text however they are escaped.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>()#!|~$&])")
_WORD_JOINER = "\u2060"  # invisible, and breaks every autolink, mention and reference it stands in
_AUTOLINKS = re.compile(r"(?i)(@|#|(?<=:)(?=//)|(?<=www)(?=\.)|(?<=\bgh)(?=-))")


def plain(text: object) -> str:
    """Untrusted text on one line: line breaks and other control characters written as escapes (\\n, \\x1b)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"), str(text))


def cut(text: str, limit: int) -> str:
    """text within limit characters: its start and its end around an ellipsis."""
    if len(text) <= limit:
        return text
    tail = limit // 3
    return text[: limit - tail - 1] + "\u2026" + text[len(text) - tail :]


def md_text(text: object, *, limit: int | None = None) -> str:
    """Untrusted text as inert Markdown text, on one line (table cells included)."""
    one = plain(text)
    if limit is not None:
        one = cut(one, limit)
    return _AUTOLINKS.sub(lambda m: m.group() + _WORD_JOINER, _MD_SPECIAL.sub(r"\\\1", one))


def md_code(text: object, *, table: bool = False, limit: int | None = None) -> str:
    """Untrusted text as one inline code span that its content cannot close; table=True inside a table cell."""
    one = plain(text)
    if limit is not None:
        one = cut(one, limit)
    if not one.strip():
        return md_text(repr(one))
    if table:
        one = one.replace("|", "\\|")  # the table splits cells before code spans are parsed
    fence = "`" * (max((len(run) for run in re.findall("`+", one)), default=0) + 1)
    pad = " " if one[0] in "` " or one[-1] in "` " else ""
    return f"{fence}{pad}{one}{pad}{fence}"


def _location(location: object) -> str:
    text = plain(location)
    return "./" + text if text.startswith(":") else text  # a path that reads like a workflow command


def render_text(report: Report) -> str:
    """Render for a terminal: one line per check, one line per finding."""
    lines = []
    for c in report.checks:
        head = f"{_ICONS[c.status]:4}  {plain(c.check):<20} {plain(c.summary)}".rstrip()
        lines.append(head + (f"  ({c.duration_s:.2f}s)" if c.duration_s >= 0.01 else ""))
        for f in c.findings:
            where = f"{_location(f.location)}: " if f.location else ""
            lines.append(f"      {where}{f.severity}: {plain(f.message)}")
    counts = {s: sum(c.status == s for c in report.checks) for s in STATUSES}
    total = sum(c.duration_s for c in report.checks) + float(report.subject.get("training_seconds", 0.0))
    lines.append(
        f"{report.command}: {report.status.upper()} - {counts['pass']} passed, {counts['warn']} warned, "
        f"{counts['fail']} failed, {counts['skip']} skipped in {total:.1f}s" + _process_time(report)
    )
    return "\n".join(lines) + "\n"


def _process_time(report: Report) -> str:
    """The whole process's time beside the checks' own: start-up and imports (torch alone takes seconds) included."""
    seconds = report.subject.get("process_seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return ""
    return f" (process {seconds:.1f}s, with start-up and imports)"


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
        f"### ci-checks {report.command}: {STATUS_ICONS[report.status]} {report.status}",
        "",
        "| check | status | summary | time |",
        "|---|---|---|---|",
    ]
    for c in report.checks:
        name, summary = md_code(c.check, table=True, limit=80), md_text(c.summary)
        lines.append(f"| {name} | {STATUS_ICONS[c.status]} {c.status} | {summary} | {c.duration_s:.2f}s |")
    findings = [f for c in report.checks for f in c.findings if f.severity != "notice"]
    if findings:
        lines += ["", "<details><summary>Findings</summary>", ""]
        for f in findings:
            lines.append(f"- {md_code(f.check, limit=80)} ({f.severity}): {md_text(f.message)}")
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
