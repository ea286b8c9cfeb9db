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
import time
from collections.abc import Mapping, Sequence
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
    seconds: float = 0.0


@dataclass
class ActionResult:
    outcome: str
    outputs: dict[str, str]
    steps: list[StepResult]
    summary: str
    env: dict[str, str]
    skipped_uses: list[str]
    path: list[str] = field(default_factory=list)  # folders the steps added to PATH (GITHUB_PATH), in order

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
    # The rest of the default variables, when the test's github context has them (a workflow run's has).
    for key in ("sha", "ref", "ref_name", "base_ref", "head_ref", "api_url", "server_url", "event_path", "workflow"):
        if key in github_ctx:
            process_env[f"GITHUB_{key.upper()}"] = to_string(github_ctx[key])
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
            extra_path.extend(nested.path)
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
    return ActionResult(
        "failure" if failed else "success", outputs, results, summary, exported, skipped_uses, list(extra_path)
    )


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
    started = time.perf_counter()
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
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------- workflows


class WorkflowError(Exception):
    """A workflow that GitHub would refuse to start (permissions, inputs), or a step the model cannot run."""


_LEVELS = {"none": 0, "read": 1, "write": 2}
_FULL = re.compile(r"^\s*\$\{\{(.*)\}\}\s*$", re.S)


def value_of(value: Any, contexts: Mapping[str, Any], status: Mapping[str, bool] = ALL_OK) -> Any:
    """A `with:` value for a called workflow: a lone `${{ expr }}` keeps its type (boolean, number), text is text."""
    if isinstance(value, str):
        m = _FULL.match(value)
        if m and "${{" not in m.group(1):
            return evaluate(m.group(1), contexts, status)
        return interpolate(value, contexts, status)
    return value


def _typed(name: str, spec: Mapping[str, Any], value: Any) -> Any:
    kind = spec.get("type", "string")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if to_string(value) in ("true", "false"):
            return to_string(value) == "true"
        raise WorkflowError(f"input {name}: expected a boolean, got {value!r}")
    if kind == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise WorkflowError(f"input {name}: expected a number, got {value!r}") from None
    return to_string(value)


@dataclass
class JobResult:
    id: str
    result: str  # success, failure or skipped, as `needs.<id>.result` reads it
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)  # of every matrix instance, in order
    called: WorkflowRun | None = None  # the run of a `uses:` job's reusable workflow
    summary: str = ""

    @property
    def log(self) -> str:
        if self.called is not None:
            return self.called.log
        return "\n".join(f"--- {self.id}: {s.name} [{s.outcome}]\n{s.log}" for s in self.steps)

    def step(self, name_or_id: str) -> StepResult:
        return next(s for s in self.steps if name_or_id in (s.id, s.name))


@dataclass
class WorkflowRun:
    path: str
    jobs: dict[str, JobResult]
    outputs: dict[str, str]

    @property
    def log(self) -> str:
        return "\n".join(job.log for job in self.jobs.values())

    @property
    def summary(self) -> str:
        return "".join(j.called.summary if j.called else j.summary for j in self.jobs.values())

    def job(self, path: str) -> JobResult:
        """A job by its path through the calls, e.g. 'ml-ci/compare'."""
        head, _, rest = path.partition("/")
        job = self.jobs[head]
        if not rest:
            return job
        assert job.called is not None, f"{head} calls no workflow"
        return job.called.job(rest)


class Runner:
    """One workflow run, the way GitHub runs it, close enough for our workflows; see run_workflow."""

    def __init__(
        self,
        *,
        remote: str,
        github: Mapping[str, Any],
        temp: str,
        env: Mapping[str, str] | None,
        resolve: Any,
        secrets: Mapping[str, str] | None = None,
        timeout: float = 900,
        skip: Sequence[str] = (),
    ) -> None:
        self.skip = set(skip)
        self.remote = remote
        self.github = dict(github)
        self.temp = temp
        self.env = dict(env or {})
        self.resolve = resolve
        self.secrets = dict(secrets or {})
        self.timeout = timeout
        self.artifacts = os.path.join(temp, "artifacts")
        os.makedirs(self.artifacts, exist_ok=True)
        self.groups: list[str] = []
        self.counter = 0
        event_path = os.path.join(temp, "event.json")
        with open(event_path, "w", encoding="utf-8") as fh:
            json.dump(self.github.get("event", {}), fh)
        self.github["event_path"] = event_path

    # ------------------------------------------------------------ workflows and jobs

    def workflow(
        self,
        path: str,
        *,
        root: str,
        inputs: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        granted: Mapping[str, str] | None = None,
        prefix: str = "",
    ) -> WorkflowRun:
        doc = load_yaml(path)
        on = doc.get("on", doc.get(True))
        call = on.get("workflow_call") if isinstance(on, dict) else None
        if granted is not None and "workflow_call" not in (on or {}):
            raise WorkflowError(f"{path} is not a reusable workflow (no on: workflow_call)")
        self._check_permissions(path, doc, granted, root)
        declared = (call or {}).get("inputs") or {}
        given = dict(inputs or {})
        unknown = set(given) - set(declared)
        if unknown:
            raise WorkflowError(f"{path}: unexpected inputs {sorted(unknown)}")
        resolved = {}
        for name, spec in declared.items():
            if name in given:
                resolved[name] = _typed(name, spec, given[name])
            elif spec.get("required"):
                raise WorkflowError(f"{path}: the required input {name} is missing")
            else:
                resolved[name] = _typed(name, spec, spec.get("default", ""))
        secret_names = set(((call or {}).get("secrets") or {}))
        unknown = set(secrets or {}) - secret_names
        if unknown:
            raise WorkflowError(f"{path}: unexpected secrets {sorted(unknown)}")
        contexts: dict[str, Any] = {
            "github": self.github,
            "inputs": Strict("inputs", resolved),
            "secrets": {**{n: "" for n in secret_names}, **(secrets if granted is not None else self.secrets)},
            "vars": {},
        }
        concurrency = doc.get("concurrency")
        if isinstance(concurrency, dict) and concurrency.get("group"):
            group = interpolate(concurrency["group"], contexts)
            if group in self.groups:
                raise WorkflowError(f"{path}: concurrency group {group!r} is taken by another workflow of this run")
            self.groups.append(group)
        contexts["env"] = {k: interpolate(v, contexts) for k, v in (doc.get("env") or {}).items()}
        results: dict[str, JobResult] = {}
        pending = dict(doc["jobs"])
        while pending:
            ready = [j for j, job in pending.items() if set(_needs(job)) <= set(results)]
            if not ready:
                raise WorkflowError(f"{path}: jobs {sorted(pending)} need jobs that do not exist, or each other")
            for job_id in ready:
                job = pending.pop(job_id)
                if prefix + job_id in self.skip:
                    results[job_id] = JobResult(job_id, "skipped")
                else:
                    results[job_id] = self._job(path, root, doc, job_id, job, contexts, results, prefix)
        jobs_ctx = {j: {"result": r.result, "outputs": r.outputs} for j, r in results.items()}
        outputs = {
            name: interpolate(spec.get("value", ""), {**contexts, "jobs": jobs_ctx})
            for name, spec in ((call or {}).get("outputs") or {}).items()
        }
        return WorkflowRun(path, results, outputs)

    def _target(self, root: str, uses: str) -> tuple[str, str]:
        """The file and repository folder of a `uses:` of a reusable workflow."""
        if uses.startswith("$/"):
            return os.path.join(root, uses.removeprefix("$/")), root
        m = re.fullmatch(r"([\w.-]+/[\w.-]+)/(\.github/workflows/[\w.-]+\.ya?ml)@(\S+)", uses)
        if not m:
            raise WorkflowError(f"cannot resolve uses: {uses}")
        target_root = str(self.resolve(m.group(1), m.group(3)))
        return os.path.join(target_root, m.group(2)), target_root

    def _check_permissions(
        self, path: str, doc: Mapping[str, Any], granted: Mapping[str, str] | None, root: str
    ) -> None:
        """GitHub's start-up check, before any job runs and whatever the jobs' `if:` say: no job of a called
        workflow asks for more than its calling job grants, through every level of calls."""
        for job_id, job in doc["jobs"].items():
            asked = job.get("permissions", doc.get("permissions"))
            if not isinstance(asked, dict):
                raise WorkflowError(f"{path}: job {job_id}: give its permissions scope by scope")
            if granted is not None:
                for scope, level in asked.items():
                    if _LEVELS[level] > _LEVELS[granted.get(scope, "none")]:
                        raise WorkflowError(
                            f"{path}: The nested job '{job_id}' is requesting '{scope}: {level}', but is only "
                            f"allowed '{scope}: {granted.get(scope, 'none')}'."
                        )
            if "uses" in job:
                target, target_root = self._target(root, str(job["uses"]))
                self._check_permissions(target, load_yaml(target), asked, target_root)

    def _job(
        self,
        path: str,
        root: str,
        doc: Mapping[str, Any],
        job_id: str,
        job: Mapping[str, Any],
        workflow_contexts: Mapping[str, Any],
        results: Mapping[str, JobResult],
        prefix: str,
    ) -> JobResult:
        needs = {j: {"result": results[j].result, "outputs": results[j].outputs} for j in _needs(job)}
        contexts = {**workflow_contexts, "needs": needs}
        status = {
            "success": all(n["result"] == "success" for n in needs.values()),
            "failure": any(n["result"] == "failure" for n in needs.values()),
            "always": True,
            "cancelled": False,
        }
        if not condition(job.get("if"), contexts, status):
            return JobResult(job_id, "skipped")
        if "uses" in job:
            return self._call(root, job_id, job, contexts, doc, prefix)
        matrix = self._matrix(job, contexts)
        result = JobResult(job_id, "success")
        for index, combination in enumerate(matrix):
            self.counter += 1
            instance = self._steps(path, root, job_id, job, contexts, combination, index, len(matrix))
            result.steps += instance.steps
            result.outputs = instance.outputs
            result.summary += instance.summary
            if instance.result == "failure":
                result.result = "failure"
        return result

    def _call(
        self,
        root: str,
        job_id: str,
        job: Mapping[str, Any],
        contexts: Mapping[str, Any],
        doc: Mapping[str, Any],
        prefix: str,
    ) -> JobResult:
        target, target_root = self._target(root, str(job["uses"]))
        granted = job.get("permissions", doc.get("permissions"))
        if not isinstance(granted, dict):
            raise WorkflowError(f"job {job_id}: give the permissions of a reusable-workflow call scope by scope")
        inputs = {k: value_of(v, contexts) for k, v in (job.get("with") or {}).items()}
        secrets = {k: to_string(value_of(v, contexts)) for k, v in (job.get("secrets") or {}).items()}
        run = self.workflow(
            target, root=target_root, inputs=inputs, secrets=secrets, granted=granted, prefix=f"{prefix}{job_id}/"
        )
        failed = any(j.result == "failure" for j in run.jobs.values())
        return JobResult(job_id, "failure" if failed else "success", run.outputs, called=run)

    def _matrix(self, job: Mapping[str, Any], contexts: Mapping[str, Any]) -> list[dict[str, Any]]:
        matrix = (job.get("strategy") or {}).get("matrix")
        if not matrix:
            return [{}]
        if isinstance(matrix, str):
            matrix = value_of(matrix, contexts)
        combinations: list[dict[str, Any]] = [{}]
        for key, values in matrix.items():
            if key in ("include", "exclude"):
                raise WorkflowError("matrix include/exclude: not modelled")
            values = value_of(values, contexts) if isinstance(values, str) else values
            combinations = [{**c, key: v} for c in combinations for v in values]
        return combinations

    def _steps(
        self,
        path: str,
        root: str,
        job_id: str,
        job: Mapping[str, Any],
        contexts: Mapping[str, Any],
        matrix: Mapping[str, Any],
        index: int,
        total: int,
    ) -> JobResult:
        base = os.path.join(self.temp, f"{self.counter:02d}-{job_id}")
        workspace, temp = os.path.join(base, "w"), os.path.join(base, "t")
        os.makedirs(workspace)
        os.makedirs(temp)
        github = {**self.github, "workspace": workspace, "job": job_id}
        runner = {"temp": temp, "os": "Linux", "arch": "X64"}
        strategy = {"job-index": index, "job-total": total}
        steps_ctx: dict[str, Any] = Strict(
            "steps", {s["id"]: {"outputs": {}, "outcome": "", "conclusion": ""} for s in job["steps"] if "id" in s}
        )
        ctx: dict[str, Any] = {
            **contexts,
            "github": github,
            "runner": runner,
            "matrix": matrix,
            "strategy": strategy,
            "steps": steps_ctx,
        }
        for key in ("runs-on", "timeout-minutes", "environment", "name"):  # evaluated, so a typo fails here
            _evaluate_all(job.get(key), ctx)
        env = dict(ctx["env"])
        env.update({k: interpolate(v, ctx) for k, v in (job.get("env") or {}).items()})
        ctx["env"] = env
        summary_path = os.path.join(temp, "step_summary.md")
        open(summary_path, "w").close()
        exported: dict[str, str] = {}
        extra_path: list[str] = []
        results: list[StepResult] = []
        failed = False
        for i, step in enumerate(job["steps"]):
            name = step.get("name") or step.get("uses") or step.get("run", "")[:40]
            step_ctx = {**ctx, "env": {**env, **exported}}
            status = {"success": not failed, "failure": failed, "always": True, "cancelled": False}
            if not condition(step.get("if"), step_ctx, status):
                result = StepResult(step.get("id"), name, "skipped")
            else:
                step_env = {k: interpolate(v, step_ctx, status) for k, v in (step.get("env") or {}).items()}
                process = {
                    **self._base_env(github, workspace, temp),
                    **env,
                    **exported,
                    "GITHUB_JOB": job_id,
                    "GITHUB_STEP_SUMMARY": summary_path,
                    **step_env,
                }
                if extra_path:
                    process["PATH"] = os.pathsep.join(
                        [*reversed(extra_path), process.get("PATH", os.environ.get("PATH", ""))]
                    )
                result = self._step(
                    root,
                    step,
                    i,
                    name,
                    step_ctx,
                    status,
                    process,
                    workspace,
                    temp,
                    github,
                    exported,
                    extra_path,
                    summary_path,
                )
                if result.outcome == "failure" and not truthy(value_of(step.get("continue-on-error", False), ctx)):
                    failed = True
            if step.get("id"):
                coe = truthy(value_of(step.get("continue-on-error", False), ctx))
                steps_ctx[step["id"]] = {
                    "outputs": result.outputs,
                    "outcome": result.outcome,
                    "conclusion": "success" if result.outcome == "failure" and coe else result.outcome,
                }
            results.append(result)
        outputs = {k: interpolate(v, ctx) for k, v in (job.get("outputs") or {}).items()}
        with open(summary_path, encoding="utf-8") as fh:
            summary = fh.read()
        return JobResult(job_id, "failure" if failed else "success", outputs, results, summary=summary)

    def _step(
        self,
        root: str,
        step: Mapping[str, Any],
        index: int,
        name: str,
        ctx: Mapping[str, Any],
        status: Mapping[str, bool],
        process: dict[str, str],
        workspace: str,
        temp: str,
        github: Mapping[str, Any],
        exported: dict[str, str],
        extra_path: list[str],
        summary_path: str,
    ) -> StepResult:
        uses = str(step.get("uses", ""))
        with_ = {k: interpolate(v, ctx, status) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("$/actions/"):
            nested = run_composite(
                os.path.join(root, uses.removeprefix("$/")),
                with_,
                workspace=workspace,
                temp=temp,
                env=process,
                github=github,
                timeout=self.timeout,
                repository=root,
            )
            exported.update(nested.env)
            extra_path.extend(nested.path)
            with open(summary_path, "a", encoding="utf-8") as fh:  # the composite's own summary file
                fh.write(nested.summary)
            codes = [s.returncode for s in nested.steps if s.outcome == "failure"]
            return StepResult(
                step.get("id"), name, nested.outcome, nested.outputs, nested.log, codes[0] if codes else 0, nested
            )
        if uses:
            action = uses.partition("@")[0]
            handler = {
                "actions/checkout": self._checkout,
                "actions/setup-python": lambda w, ws: "setup-python: the Python on PATH",
                "actions/upload-artifact": self._upload,
                "actions/download-artifact": self._download,
            }.get(action)
            if handler is None:
                raise WorkflowError(f"step {name!r}: the runner model has no stand-in for {uses}")
            try:
                log = handler(with_, workspace)
            except WorkflowError as e:
                return StepResult(step.get("id"), name, "failure", {}, str(e), 1)
            return StepResult(step.get("id"), name, "success", {}, log, 0)
        run = {**step, "shell": step.get("shell", "bash")}
        # _run_step reads the step's env itself; the job's and the workflow's are in the process environment.
        return _run_step(
            run, index, name, ctx, status, process, exported, extra_path, workspace, temp, summary_path, self.timeout
        )

    def _base_env(self, github: Mapping[str, Any], workspace: str, temp: str) -> dict[str, str]:
        """The process environment of a `run:` step: this process's, less GitHub's, plus the runner's variables."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "INPUT_"))}
        base.pop("CI", None)
        base["PATH"] = os.path.dirname(sys.executable) + os.pathsep + base.get("PATH", "")
        base.update({"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": workspace, "RUNNER_TEMP": temp})
        for key in (
            "repository",
            "event_name",
            "sha",
            "ref",
            "ref_name",
            "base_ref",
            "head_ref",
            "api_url",
            "server_url",
            "event_path",
            "workflow",
        ):
            if key in github:
                base[f"GITHUB_{key.upper()}"] = to_string(github[key])
        base.update(self.env)
        return base

    # ------------------------------------------------------------ the third-party actions our workflows use

    def _git(self, *args: str, cwd: str) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **self.env}, capture_output=True, text=True)
        if done.returncode:
            raise WorkflowError(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def _checkout(self, with_: Mapping[str, str], workspace: str) -> str:
        dest = os.path.join(workspace, with_.get("path", "") or "")
        os.makedirs(dest, exist_ok=True)
        ref = with_.get("ref") or to_string(self.github["sha"])
        self._git("init", "-q", cwd=dest)
        self._git("remote", "add", "origin", self.remote, cwd=dest)
        if with_.get("fetch-depth", "1") == "0":
            self._git(
                "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", cwd=dest
            )
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            if with_.get("fetch-depth", "1") != "0":
                self._git("fetch", "-q", "--depth=1", "origin", ref, cwd=dest)
            self._git("checkout", "-q", "--detach", ref, cwd=dest)
        else:
            branch = ref.removeprefix("refs/heads/")
            if with_.get("fetch-depth", "1") != "0":
                self._git(
                    "fetch", "-q", "--depth=1", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}", cwd=dest
                )
            self._git("checkout", "-q", "-B", branch, f"refs/remotes/origin/{branch}", cwd=dest)
        return f"checked out {ref} into {dest}"

    def _upload(self, with_: Mapping[str, str], workspace: str) -> str:
        import glob
        import shutil

        name = with_["name"]
        target = os.path.join(self.artifacts, name)
        if os.path.exists(target):
            raise WorkflowError(f"Failed to CreateArtifact: an artifact with this name already exists: {name}")
        files = []
        for pattern in (line.strip() for line in with_["path"].splitlines()):
            if pattern:
                full = pattern if os.path.isabs(pattern) else os.path.join(workspace, pattern)
                for match in glob.glob(full):
                    if os.path.isdir(match):
                        files += [os.path.join(d, f) for d, _, fs in os.walk(match) for f in fs]
                    else:
                        files.append(match)
        if not files:
            if with_.get("if-no-files-found", "warn") == "error":
                raise WorkflowError(f"No files were found with the provided path: {with_['path']}")
            return f"no files for {name}: no artifact"
        common = os.path.commonpath([os.path.dirname(f) for f in files])
        for file in files:
            out = os.path.join(target, os.path.relpath(file, common))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copy2(file, out)
        return f"uploaded {len(files)} files as {name}"

    def _download(self, with_: Mapping[str, str], workspace: str) -> str:
        import fnmatch
        import shutil

        path = os.path.join(workspace, with_.get("path", "") or "")
        if with_.get("name"):
            names = [with_["name"]]
            if not os.path.isdir(os.path.join(self.artifacts, names[0])):
                raise WorkflowError(f"Unable to download artifact(s): Artifact not found for name: {names[0]}")
            merge = True
        else:
            names = sorted(n for n in os.listdir(self.artifacts) if fnmatch.fnmatchcase(n, with_.get("pattern", "*")))
            merge = with_.get("merge-multiple", "false") == "true"
        for name in names:
            shutil.copytree(
                os.path.join(self.artifacts, name), path if merge else os.path.join(path, name), dirs_exist_ok=True
            )
        return f"downloaded {names} into {path}"


def _evaluate_all(value: Any, contexts: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _evaluate_all(v, contexts) for k, v in value.items()}
    if isinstance(value, list):
        return [_evaluate_all(v, contexts) for v in value]
    return value_of(value, contexts)


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def run_workflow(
    path: str,
    *,
    remote: str,
    github: Mapping[str, Any],
    temp: str,
    resolve: Any,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    root: str | None = None,
    timeout: float = 900,
    skip: Sequence[str] = (),
) -> WorkflowRun:
    """Run a workflow as GitHub would, job by job in `needs` order, in one process.

    `remote` is the git repository that actions/checkout clones (github.sha and branches from it); `resolve(owner/
    name, ref)` gives the folder of another repository's ref, for `uses: OWNER/NAME/.github/workflows/X.yml@REF`;
    `$/` in a workflow names the repository it came from (`root`, default: two folders above .github/workflows).
    Called workflows get GitHub's start-up checks: declared inputs and secrets, and no job asking for more
    permissions than its caller grants. Each job gets a fresh workspace and temp folder; artifacts live in one store
    per run; concurrency groups must differ across the run. Third-party actions are stand-ins: checkout (git),
    setup-python (the Python on PATH), upload-artifact and download-artifact (the store); any other is an error.
    `skip` names jobs, by their path through the calls ("ml-ci/lint"), to treat as skipped (as `act -j` would).
    """
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    runner = Runner(
        remote=remote, github=github, temp=temp, env=env, resolve=resolve, secrets=secrets, timeout=timeout, skip=skip
    )
    return runner.workflow(path, root=root)
