"""A small, strict model of GitHub Actions for the tests: the expression language and composite-action runs.

`evaluate` implements the subset of GitHub's expression syntax our YAML uses (contexts, literals, ==, !=, <, >,
&&, ||, !, and the functions below), with GitHub's semantics: loose equality that compares strings
case-insensitively, && and || returning an operand, a missing property reading as null. It is stricter than GitHub
in one way on purpose: a reference to an input or a step id that does not exist raises, so a typo fails a test.

`run_composite` runs a composite action's steps the way the runner does: `with:` inputs (and their defaults) are
the `inputs` context, each step's `env:` is evaluated into its environment, `run:` scripts go to bash (`bash
--noprofile --norc -eo pipefail`) or python, and GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY
are files the next steps and the action's outputs read. A `uses: $/actions/NAME` step (this repository's own action,
through GitHub's self-repository syntax) runs that action the same way, nested, and its outputs are the step's; other
`uses:` steps are not run (they need the network): they are recorded, and the test says which ones it expects.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

# ---------------------------------------------------------------- expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b|0x[0-9a-fA-F]+)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[!<>(),.\[\]*])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


class ExpressionError(Exception):
    """An expression that GitHub would reject, or one that names an input or step that does not exist."""


class Strict(dict):  # type: ignore[type-arg]
    """A context whose missing keys are typos (inputs, steps), not nulls."""

    def __init__(self, name: str, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.name = name


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"cannot parse {text[pos:]!r} in expression {text!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _to_number(v: Any) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        if v.strip() == "":
            return 0.0
        try:
            return float(int(v, 16)) if v.lower().startswith("0x") else float(v)
        except ValueError:
            return math.nan
    return math.nan


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    return _to_number(a) == _to_number(b)


def truthy(v: Any) -> bool:
    if (
        v is None
        or v is False
        or v == ""
        or (isinstance(v, (int, float)) and not isinstance(v, bool) and (v == 0 or math.isnan(v)))
    ):
        return False
    return True


def to_string(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, indent=2)
    return str(v)


class _Parser:
    def __init__(self, text: str, contexts: Mapping[str, Any], status: Mapping[str, bool]) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.contexts = contexts
        self.status = status

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExpressionError(f"expected {value or 'a token'} in {self.text!r}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            left = left if truthy(left) else right
        return left

    def and_(self) -> Any:
        left = self.cmp()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.cmp()
            left = right if truthy(left) else left
        return left

    def cmp(self) -> Any:
        left = self.unary()
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            right = self.unary()
            if tok[1] == "==":
                return _equal(left, right)
            if tok[1] == "!=":
                return not _equal(left, right)
            if isinstance(left, str) and isinstance(right, str):
                a: Any = left.casefold()
                b: Any = right.casefold()
            else:
                a, b = _to_number(left), _to_number(right)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[tok[1]]
        return left

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(int(value, 16)) if value.lower().startswith("0x") else float(value)
        if (kind, value) == ("op", "("):
            inner = self.or_()
            self.take(")")
            return inner
        if kind != "name":
            raise ExpressionError(f"unexpected {value!r} in {self.text!r}")
        if value in ("true", "false"):
            return value == "true"
        if value == "null":
            return None
        if self.peek() == ("op", "("):
            return self.call(value)
        return self.path(value)

    def call(self, name: str) -> Any:
        self.take("(")
        args = []
        if self.peek() != ("op", ")"):
            args.append(self.or_())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.or_())
        self.take(")")
        lname = name.lower()
        if lname in ("success", "failure", "always", "cancelled"):
            return self.status[lname]
        if lname == "contains":
            hay, needle = args
            if isinstance(hay, list):
                return any(_equal(x, needle) for x in hay)
            return to_string(needle).casefold() in to_string(hay).casefold()
        if lname == "startswith":
            return to_string(args[0]).casefold().startswith(to_string(args[1]).casefold())
        if lname == "endswith":
            return to_string(args[0]).casefold().endswith(to_string(args[1]).casefold())
        if lname == "format":
            fmt, rest = to_string(args[0]), [to_string(a) for a in args[1:]]
            return (
                re.sub(r"\{(\d+)\}", lambda m: rest[int(m.group(1))], fmt.replace("{{", "\0").replace("}}", "\1"))
                .replace("\0", "{")
                .replace("\1", "}")
            )
        if lname == "fromjson":
            return json.loads(to_string(args[0]))
        if lname == "tojson":
            return json.dumps(args[0], indent=2)
        if lname == "join":
            sep = to_string(args[1]) if len(args) > 1 else ","
            return sep.join(to_string(x) for x in args[0]) if isinstance(args[0], list) else to_string(args[0])
        raise ExpressionError(f"unknown function {name}() in {self.text!r}")

    def path(self, name: str) -> Any:
        if name not in self.contexts:
            raise ExpressionError(f"unknown context {name!r} in {self.text!r}")
        value: Any = self.contexts[name]
        while self.peek() in (("op", "."), ("op", "[")):
            if self.take()[1] == ".":
                key = self.take()[1]
            else:
                key = to_string(self.or_())
                self.take("]")
            if isinstance(value, Strict):
                if key not in value:
                    raise ExpressionError(f"{value.name}.{key} does not exist (in {self.text!r}); a typo?")
                value = value[key]
            elif isinstance(value, Mapping):
                value = next((v for k, v in value.items() if k.casefold() == key.casefold()), None)
            else:
                value = None
        return value


ALL_OK = {"success": True, "failure": False, "always": True, "cancelled": False}


def evaluate(expression: str, contexts: Mapping[str, Any], status: Mapping[str, bool] = ALL_OK) -> Any:
    """The value of one expression (without the `${{ }}`)."""
    return _Parser(expression, contexts, status).parse()


_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(text: Any, contexts: Mapping[str, Any], status: Mapping[str, bool] = ALL_OK) -> str:
    """A YAML string value with each `${{ expr }}` replaced by its string form."""
    if not isinstance(text, str):
        return to_string(text)
    return _TEMPLATE.sub(lambda m: to_string(evaluate(m.group(1), contexts, status)), text)


def condition(text: Any, contexts: Mapping[str, Any], status: Mapping[str, bool]) -> bool:
    """An `if:` value: with or without `${{ }}`; without a status function it means success() && (...)."""
    if text is None:
        return status["success"]
    if isinstance(text, bool):
        return text and status["success"]
    expr = str(text).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", expr, re.S)
    if m:
        expr = m.group(1)
    value = truthy(evaluate(expr, contexts, status))
    if not re.search(r"\b(success|failure|always|cancelled)\s*\(", expr):
        value = value and status["success"]
    return value


# ---------------------------------------------------------------- composite actions


def parse_command_file(path: str) -> dict[str, str]:
    """name=value lines and name<<DELIMITER heredocs, as GITHUB_OUTPUT and GITHUB_ENV hold them."""
    values: dict[str, str] = {}
    if not os.path.exists(path):
        return values
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        i += 1
    return values


@dataclass
class StepResult:
    id: str | None
    name: str
    outcome: str  # success, failure, skipped
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    returncode: int | None = None
    nested: ActionResult | None = None  # the run of a `uses: $/actions/NAME` step


@dataclass
class ActionResult:
    outcome: str
    outputs: dict[str, str]
    steps: list[StepResult]
    summary: str
    env: dict[str, str]
    skipped_uses: list[str]

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.name} [{s.outcome}]\n{s.log}" for s in self.steps)

    def step(self, name_or_id: str) -> StepResult:
        return next(s for s in self.steps if name_or_id in (s.id, s.name))


def load_yaml(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def run_composite(
    action_dir: str,
    inputs: Mapping[str, str],
    *,
    workspace: str,
    temp: str,
    env: Mapping[str, str] | None = None,
    github: Mapping[str, Any] | None = None,
    timeout: float = 600,
    repository: str | None = None,
) -> ActionResult:
    """Run a composite action's steps as the runner does; see the module docstring. `repository` is the checkout
    that `$/` names (default: two folders above action_dir, as in actions/NAME/action.yml)."""
    repository = repository or os.path.dirname(os.path.dirname(os.path.abspath(action_dir)))
    action = load_yaml(os.path.join(action_dir, "action.yml"))
    assert action["runs"]["using"] == "composite", action_dir
    declared = action.get("inputs") or {}
    unknown = set(inputs) - set(declared)
    if unknown:
        raise ExpressionError(f"{action_dir}: unexpected inputs {sorted(unknown)}; valid: {sorted(declared)}")
    github_ctx = {
        "token": "test-token",
        "workspace": workspace,
        "event_name": "pull_request",
        "repository": "owner/repo",
        "event": {},
        **(github or {}),
    }
    runner_ctx = {"temp": temp, "os": "Linux", "arch": "X64"}
    base_contexts = {"github": github_ctx, "runner": runner_ctx, "env": {}}
    resolved = {}
    for name, spec in declared.items():
        if name in inputs:
            resolved[name] = inputs[name]
        else:
            resolved[name] = interpolate((spec or {}).get("default", ""), base_contexts)
    inputs_ctx = Strict("inputs", resolved)
    bin_dir = os.path.dirname(sys.executable)
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "INPUT_"))}
    process_env.pop("CI", None)
    process_env["PATH"] = bin_dir + os.pathsep + process_env.get("PATH", "")
    process_env.update(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": workspace,
            "RUNNER_TEMP": temp,
            "GITHUB_ACTION_PATH": os.path.abspath(action_dir),
            "GITHUB_REPOSITORY": github_ctx["repository"],
            "GITHUB_EVENT_NAME": github_ctx["event_name"],
        }
    )
    process_env.update(env or {})
    summary_path = os.path.join(temp, "step_summary.md")
    open(summary_path, "a").close()
    # Every declared id is known (a later step reads as empty), any other id is a typo.
    steps_ctx: dict[str, Any] = Strict(
        "steps",
        {s["id"]: {"outputs": {}, "outcome": "", "conclusion": ""} for s in action["runs"]["steps"] if "id" in s},
    )
    results: list[StepResult] = []
    failed = False
    skipped_uses = []
    exported: dict[str, str] = {}
    extra_path: list[str] = []
    for index, step in enumerate(action["runs"]["steps"]):
        name = step.get("name") or step.get("run", step.get("uses", ""))[:40]
        contexts = {**base_contexts, "inputs": inputs_ctx, "steps": steps_ctx, "env": {**exported}}
        status = {"success": not failed, "failure": failed, "always": True, "cancelled": False}
        step_id = step.get("id")
        if not condition(step.get("if"), contexts, status):
            result = StepResult(step_id, name, "skipped")
        elif str(step.get("uses", "")).startswith("$/actions/"):
            nested = run_composite(
                os.path.join(repository, step["uses"].removeprefix("$/")),
                {k: interpolate(v, contexts, status) for k, v in (step.get("with") or {}).items()},
                workspace=workspace,
                temp=temp,
                env={
                    **(env or {}),
                    **exported,
                    **({"PATH": os.pathsep.join([*reversed(extra_path), process_env["PATH"]])} if extra_path else {}),
                    **{k: interpolate(v, contexts, status) for k, v in (step.get("env") or {}).items()},
                },
                github=github,
                timeout=timeout,
                repository=repository,
            )
            skipped_uses += nested.skipped_uses
            exported.update(nested.env)
            codes = [s.returncode for s in nested.steps if s.outcome == "failure"]
            result = StepResult(
                step_id, name, nested.outcome, nested.outputs, nested.log, codes[0] if codes else 0, nested
            )
            if result.outcome == "failure" and not truthy(step.get("continue-on-error", False)):
                failed = True
        elif "uses" in step:
            for value in (step.get("with") or {}).values():  # evaluated, so a typo there fails too
                interpolate(value, contexts, status)
            skipped_uses.append(step["uses"])
            result = StepResult(step_id, name, "skipped")
        else:
            result = _run_step(
                step,
                index,
                name,
                contexts,
                status,
                process_env,
                exported,
                extra_path,
                workspace,
                temp,
                summary_path,
                timeout,
            )
            if result.outcome == "failure" and not truthy(step.get("continue-on-error", False)):
                failed = True
        if step_id:
            steps_ctx[step_id] = {
                "outputs": result.outputs,
                "outcome": result.outcome,
                "conclusion": (
                    "success"
                    if result.outcome == "failure" and truthy(step.get("continue-on-error", False))
                    else result.outcome
                ),
            }
        results.append(result)
    contexts = {**base_contexts, "inputs": inputs_ctx, "steps": steps_ctx}
    outputs = {k: interpolate(v.get("value", ""), contexts) for k, v in (action.get("outputs") or {}).items()}
    with open(summary_path, encoding="utf-8") as fh:
        summary = fh.read()
    return ActionResult("failure" if failed else "success", outputs, results, summary, exported, skipped_uses)


def _run_step(
    step: Mapping[str, Any],
    index: int,
    name: str,
    contexts: Mapping[str, Any],
    status: Mapping[str, bool],
    process_env: Mapping[str, str],
    exported: dict[str, str],
    extra_path: list[str],
    workspace: str,
    temp: str,
    summary_path: str,
    timeout: float,
) -> StepResult:
    shell = step.get("shell")
    if shell not in ("bash", "python"):
        raise ExpressionError(f"step {name!r}: shell must be bash or python in these actions, got {shell!r}")
    env = dict(process_env)
    env.update(exported)
    env["PATH"] = os.pathsep.join([*reversed(extra_path), env["PATH"]])
    for key, value in (step.get("env") or {}).items():
        env[key] = interpolate(value, contexts, status)
    files = {k: os.path.join(temp, f"{k.lower()}_{index}") for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")}
    for key, path in files.items():
        open(path, "w").close()
        env[key] = path
    env["GITHUB_STEP_SUMMARY"] = summary_path
    cwd = os.path.join(workspace, interpolate(step.get("working-directory", "."), contexts, status))
    script = step["run"]
    with tempfile.NamedTemporaryFile("w", suffix=".sh" if shell == "bash" else ".py", dir=temp, delete=False) as fh:
        fh.write(script)
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", fh.name] if shell == "bash" else ["python", fh.name]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    outputs = parse_command_file(files["GITHUB_OUTPUT"])
    exported.update(parse_command_file(files["GITHUB_ENV"]))
    with open(files["GITHUB_PATH"], encoding="utf-8") as fh2:
        extra_path.extend(line for line in fh2.read().splitlines() if line)
    return StepResult(
        step.get("id"),
        name,
        "success" if done.returncode == 0 else "failure",
        outputs,
        done.stdout + done.stderr,
        done.returncode,
    )
