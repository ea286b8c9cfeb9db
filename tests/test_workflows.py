"""Our workflows and actions are validated offline, and the house rules hold; each rule and each validator is
shown to fire on a bad fixture (tests/fixtures/bad_yaml/). Also: the aggregator jobs need every job, each capability
has one name, the deprecated aliases forward everything, docs/workflows.md lists every input and output, and the
runner pre-job hook refuses fork code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _github_actions import Strict, condition  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / "actions").glob("*/action.yml"))
BAD = ROOT / "tests" / "fixtures" / "bad_yaml"
BAD_WORKFLOWS = sorted((BAD / "workflows").glob("*.yml"))
BAD_ACTIONS = sorted((BAD / "actions").glob("*/action.yml"))
HOOK = ROOT / "scripts" / "runner-pre-job-hook.sh"

# The only write permissions a job may hold: (workflow file, job) -> scopes. A job that calls report.yml may grant
# it pull-requests: write (GitHub checks that a caller grants what the called jobs ask for, when the run starts).
WRITE_ALLOWED = {
    ("report.yml", "report"): {"pull-requests"},  # post the one sticky comment
    ("release.yml", "publish"): {"id-token"},  # trusted publishing to PyPI
    ("release.yml", "github-release"): {"contents"},  # create the GitHub release of the tag
}
WRITE_ALLOWED_TO_CALLERS = {"report.yml": {"pull-requests"}}
CHECKOUT_MIN_VERSION = (7, 0, 0)  # the first release that refuses fork checkouts in pull_request_target/workflow_run
ENV_NAME_EXCEPTIONS = {"REPO_TOKEN"}  # CML reads its token from this name
# Deprecated aliases kept for one release (removed in v0.2.0): old name -> the one it forwards to.
DEPRECATED_WORKFLOWS = {"tests.yml": "pytest.yml", "gpu-rerun.yml": "rerun.yml"}
DEPRECATED_ACTIONS = {"test": "pytest", "rerun-training": "rerun"}


# ---------------------------------------------------------------- tools


def tool(name: str) -> str:
    """The validator's executable; missing ones fail under CI (never a silent skip) and skip elsewhere."""
    for candidate in (Path(sys.executable).parent / name, shutil.which(name)):
        if candidate and os.access(str(candidate), os.X_OK):
            return str(candidate)
    message = (
        f"{name} is not installed: python -m pip install --require-hashes -r requirements-lint.txt && "
        "python -m pip install -e '.[lint]'"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def rel(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


# ---------------------------------------------------------------- validators


def zizmor(*paths: str) -> tuple[int, list[dict[str, Any]], str]:
    done = run_tool(
        tool("zizmor"),
        "--offline",
        "--persona",
        "pedantic",
        "--strict-collection",
        "--no-progress",
        "--format",
        "json",
        *paths,
    )
    return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else []), done.stderr


def test_zizmor_pedantic_offline_finds_nothing():
    code, findings, stderr = zizmor(".github/workflows", "actions")
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert code == 0, stderr


def test_zizmor_suppressions_carry_a_written_reason():
    for path in WORKFLOWS + ACTIONS:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "zizmor: ignore" in line:
                before = lines[i - 1].strip() if i else ""
                assert before.startswith("#") and len(before) > 40, f"{path}:{i + 1}: say why above the ignore"


def test_zizmor_fires_on_bad_fixtures():
    _, findings, _ = zizmor(
        *rel(
            [
                BAD / "workflows" / "no-expressions-in-run.yml",
                BAD / "workflows" / "sha-pinned.yml",
                BAD / "workflows" / "no-pull-request-target.yml",
            ]
        )
    )
    assert {"template-injection", "unpinned-uses", "dangerous-triggers"} <= {f["ident"] for f in findings}


def actionlint(*paths: str) -> subprocess.CompletedProcess[str]:
    # Explicit paths to shellcheck and pyflakes: actionlint silently disables a linter it cannot find, so a
    # missing one must fail here (tool() fails under CI) and the -verbose log must not report a disabled rule.
    done = run_tool(
        tool("actionlint"), "-verbose", "-shellcheck", tool("shellcheck"), "-pyflakes", tool("pyflakes"), *paths
    )
    disabled = [line for line in done.stderr.splitlines() if "was disabled" in line]
    assert not disabled, f"actionlint skipped a script linter: {disabled}"
    return done


def test_actionlint_with_shellcheck_and_pyflakes_is_clean():
    done = actionlint(*rel(WORKFLOWS))
    assert done.returncode == 0, done.stdout


def test_actionlint_canary_proves_shellcheck_and_pyflakes_run():
    done = actionlint(str((BAD / "validators" / "actionlint-canary.yml").relative_to(ROOT)))
    assert done.returncode == 1
    assert "SC2086" in done.stdout and "[shellcheck]" in done.stdout
    assert "undefined name 'undefined_name'" in done.stdout and "[pyflakes]" in done.stdout


def test_actionlint_refuses_to_run_without_shellcheck(tmp_path):
    done = run_tool(
        tool("actionlint"),
        "-verbose",
        "-shellcheck",
        str(tmp_path / "missing-shellcheck"),
        str((BAD / "validators" / "actionlint-canary.yml").relative_to(ROOT)),
    )
    assert "was disabled" in done.stderr  # what the guard in actionlint() looks for


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        pytest.param("vendor.github-workflows", WORKFLOWS, id="workflows"),
        pytest.param("custom.github-workflows-require-timeout", WORKFLOWS, id="workflows-timeout"),
        pytest.param("vendor.github-actions", ACTIONS, id="actions"),
    ],
)
def test_check_jsonschema_builtin_github_schemas(schema, files):
    done = run_tool(tool("check-jsonschema"), "--builtin-schema", schema, *rel(files))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "path", "message"),
    [
        pytest.param(
            "vendor.github-workflows", "validators/schema-invalid-workflow.yml", "'soon' is not of type", id="workflow"
        ),
        pytest.param(
            "vendor.github-actions", "validators/schema-invalid-action/action.yml", "'runs' is a required", id="action"
        ),
    ],
)
def test_check_jsonschema_fires_on_bad_fixtures(schema, path, message):
    done = run_tool(tool("check-jsonschema"), "--builtin-schema", schema, str(BAD / path))
    assert done.returncode == 1 and message in done.stdout


def _action_scripts(path: Path) -> Iterator[tuple[str, str, str, list[str]]]:
    for step in yaml.safe_load(path.read_text())["runs"]["steps"]:
        if "run" in step:
            yield step.get("name", "?"), step.get("shell", ""), step["run"], list(step.get("env") or {})


def _shellcheck_actions(paths: list[Path], tmp_path: Path) -> list[str]:
    """actionlint does not read composite actions: shellcheck and pyflakes their scripts here."""
    problems = []
    for n, path in enumerate(paths):
        for m, (name, shell, script, env) in enumerate(_action_scripts(path)):
            if shell == "bash":
                file = tmp_path / f"{n}-{m}.sh"
                # The step's env: block sets these; say so, as the runner does, so shellcheck knows them.
                names = " ".join(env)
                exports = f"read -r {names} < /dev/null || true\nexport {names}\n" if env else ""
                file.write_text("#!/usr/bin/env bash\n" + exports + script)
                done = run_tool(tool("shellcheck"), "--format", "gcc", str(file))
            else:
                file = tmp_path / f"{n}-{m}.py"
                file.write_text(script)
                done = run_tool(tool("pyflakes"), str(file))
            if done.returncode:
                problems.append(f"{path.relative_to(ROOT)} step {name!r}: {done.stdout.strip()}")
    return problems


def test_action_scripts_pass_shellcheck_and_pyflakes(tmp_path):
    assert _shellcheck_actions(ACTIONS, tmp_path) == []


def test_action_script_check_fires_on_a_bad_fixture(tmp_path):
    problems = _shellcheck_actions([BAD / "validators" / "shellcheck-action" / "action.yml"], tmp_path)
    assert len(problems) == 1 and "SC2086" in problems[0]


# ---------------------------------------------------------------- house rules


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def triggers(doc: dict[Any, Any]) -> dict[str, Any]:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as true
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {t: None for t in on}
    return dict(on or {})


def jobs(doc: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    return dict(doc.get("jobs") or {})


def steps_of(path: Path, doc: dict[Any, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if "runs" in doc:
        for step in doc["runs"].get("steps") or []:
            yield "runs", step
    for job_id, job in jobs(doc).items():
        for step in job.get("steps") or []:
            yield job_id, step


def line_of_keys(path: Path) -> dict[tuple[str, ...], int]:
    """The 0-based line of every mapping key, by its path of keys: for rules that read comments."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*prefix, str(key.value))
                lines[here] = key.start_mark.line
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*prefix, str(i)))

    walk(yaml.compose(path.read_text()), ())
    return lines


def rule_workflow_name(path: Path, doc: dict[Any, Any]) -> list[str]:
    return [] if doc.get("name") else ["the workflow has no name"]


def rule_top_permissions_empty(path: Path, doc: dict[Any, Any]) -> list[str]:
    return (
        [] if doc.get("permissions") == {} else [f"top-level permissions must be {{}}, not {doc.get('permissions')!r}"]
    )


def rule_job_permissions_with_reason(path: Path, doc: dict[Any, Any]) -> list[str]:
    text, keys, problems = path.read_text().splitlines(), line_of_keys(path), []
    for job_id, job in jobs(doc).items():
        if "permissions" not in job:
            problems.append(f"job {job_id}: no permissions (declare the minimum, or {{}})")
        elif isinstance(job["permissions"], dict):
            for scope in job["permissions"]:
                if "#" not in text[keys[("jobs", job_id, "permissions", scope)]]:
                    problems.append(f"job {job_id}: permission {scope} has no comment saying why")
        elif job["permissions"] != {}:
            problems.append(f"job {job_id}: permissions {job['permissions']!r}; list the scopes one by one")
    return problems


def rule_write_permissions_allowlist(path: Path, doc: dict[Any, Any]) -> list[str]:
    problems = []
    for job_id, job in jobs(doc).items():
        allowed = set(WRITE_ALLOWED.get((path.name, job_id), set()))
        called = str(job.get("uses", "")).rpartition("/")[2].partition("@")[0]
        allowed |= WRITE_ALLOWED_TO_CALLERS.get(called, set())
        for scope, level in (job.get("permissions") or {}).items() if isinstance(job.get("permissions"), dict) else ():
            if level == "write" and scope not in allowed:
                problems.append(
                    f"job {job_id}: {scope}: write is not allowed here (only: report.yml's report job and its "
                    "callers, pull-requests; release.yml's publish, id-token, and github-release, contents)"
                )
    return problems


_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[^@\s]+)?@[0-9a-f]{40}$")


def _uses(path: Path, doc: dict[Any, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    for job_id, job in jobs(doc).items():
        if "uses" in job:
            yield ("jobs", job_id, "uses"), job["uses"]
        for i, step in enumerate(job.get("steps") or []):
            if "uses" in step:
                yield ("jobs", job_id, "steps", str(i), "uses"), step["uses"]
    if "runs" in doc:
        for i, step in enumerate(doc["runs"].get("steps") or []):
            if "uses" in step:
                yield ("runs", "steps", str(i), "uses"), step["uses"]


def rule_sha_pinned(path: Path, doc: dict[Any, Any]) -> list[str]:
    text, keys, problems = path.read_text().splitlines(), line_of_keys(path), []
    for key, uses in _uses(path, doc):
        if uses.startswith(("./", "$/", "docker://")):
            continue
        line = text[keys[key]]
        if not _PINNED.match(uses) or not re.search(r"#\s*v\d+(\.\d+)*\s*$", line):
            problems.append(f"{uses}: pin a full 40-hex commit SHA with a '# vX.Y.Z' comment")
    return problems


def _version_comment(line: str) -> tuple[int, ...]:
    m = re.search(r"#\s*v(\d+(?:\.\d+)*)", line)
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def rule_checkout_hardened(path: Path, doc: dict[Any, Any]) -> list[str]:
    text, keys, problems = path.read_text().splitlines(), line_of_keys(path), []
    for key, uses in _uses(path, doc):
        if not uses.startswith("actions/checkout@"):
            continue
        step = doc
        for k in key[:-1]:
            step = step[int(k)] if isinstance(step, list) else step[k]
        if (step.get("with") or {}).get("persist-credentials") not in (False, "false"):
            problems.append(f"{'/'.join(key[:-1])}: actions/checkout needs persist-credentials: false")
        version = _version_comment(text[keys[key]])
        if version and version < CHECKOUT_MIN_VERSION:
            problems.append(f"actions/checkout {version} predates the release that refuses unsafe fork checkouts")
    return problems


def rule_no_expressions_in_run(path: Path, doc: dict[Any, Any]) -> list[str]:
    return [
        f"{where}: step {step.get('name', '?')!r} has ${{{{ }}}} in run: pass it through env:"
        for where, step in steps_of(path, doc)
        if "${{" in str(step.get("run", ""))
    ]


def rule_no_pull_request_target(path: Path, doc: dict[Any, Any]) -> list[str]:
    return (
        ["pull_request_target runs fork code with the base repository's token and secrets"]
        if "pull_request_target" in triggers(doc)
        else []
    )


def rule_timeout_minutes(path: Path, doc: dict[Any, Any]) -> list[str]:
    return [
        f"job {j}: no timeout-minutes"
        for j, job in jobs(doc).items()
        if "runs-on" in job and "timeout-minutes" not in job
    ]


def rule_concurrency(path: Path, doc: dict[Any, Any]) -> list[str]:
    c = doc.get("concurrency")
    if not isinstance(c, dict) or not c.get("group") or c.get("cancel-in-progress") in (None, False, "false"):
        return ["no top-level concurrency group with cancel-in-progress"]
    return []


def rule_no_secrets_inherit(path: Path, doc: dict[Any, Any]) -> list[str]:
    return [
        f"job {j}: secrets: inherit; pass each secret by name"
        for j, job in jobs(doc).items()
        if job.get("secrets") == "inherit"
    ]


_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def rule_reusable_inputs_documented(path: Path, doc: dict[Any, Any]) -> list[str]:
    call = triggers(doc).get("workflow_call")
    if "workflow_call" not in triggers(doc):
        return []
    problems = []
    for name, spec in ((call or {}).get("inputs") or {}).items():
        spec = spec or {}
        if not _KEBAB.match(name):
            problems.append(f"input {name}: use kebab-case")
        for key in ("description", "type"):
            if key not in spec:
                problems.append(f"input {name}: no {key}")
        if "default" not in spec and not spec.get("required"):
            problems.append(f"input {name}: no default")
    for name, spec in ((call or {}).get("secrets") or {}).items():
        if not _KEBAB.match(name) or not (spec or {}).get("description"):
            problems.append(f"secret {name}: kebab-case with a description")
    return problems


# Jobs on runners we do not control the trust of: self-hosted labels, GPU labels, or labels chosen at run time.
def _self_hosted(job: dict[str, Any]) -> bool:
    runs_on = job.get("runs-on")
    text = json.dumps(runs_on).lower()
    return isinstance(runs_on, str) and "${{" in runs_on or "self-hosted" in text or "gpu" in text


# (scenario, github context, may the job run?)
def _scenario(event_name: str, **overrides: Any) -> dict[str, Any]:
    github = {
        "event_name": event_name,
        "repository": "owner/repo",
        "ref": "refs/heads/main",
        "ref_name": "main",
        "event": {
            "repository": {"default_branch": "main"},
            "pull_request": {"head": {"repo": {"full_name": "owner/repo", "fork": False}}},
        },
    }
    github.update(overrides)
    return github


FORK_PR = {
    "pull_request": {"head": {"repo": {"full_name": "attacker/repo", "fork": True}}},
    "repository": {"default_branch": "main"},
}
GPU_SCENARIOS = [
    ("fork pull_request", _scenario("pull_request", event=FORK_PR, ref="refs/pull/1/merge", ref_name="1/merge"), False),
    ("fork pull_request_target", _scenario("pull_request_target", event=FORK_PR), False),
    ("push to a feature branch", _scenario("push", ref="refs/heads/feature", ref_name="feature"), False),
    ("push of a tag named like the default branch", _scenario("push", ref="refs/tags/main", ref_name="main"), False),
    ("issue_comment", _scenario("issue_comment"), False),
    ("workflow_run", _scenario("workflow_run"), False),
    ("push to the default branch", _scenario("push"), None),
    ("same-repository pull_request", _scenario("pull_request", ref="refs/pull/2/merge", ref_name="2/merge"), None),
    ("schedule", _scenario("schedule"), True),
    ("workflow_dispatch", _scenario("workflow_dispatch"), None),
]


def rule_gpu_jobs_guarded(path: Path, doc: dict[Any, Any]) -> list[str]:
    problems = []
    call = triggers(doc).get("workflow_call") or {}
    defaults = {k: str((v or {}).get("default", "")) for k, v in (call.get("inputs") or {}).items()}
    for job_id, job in jobs(doc).items():
        if not _self_hosted(job):
            continue
        if not job.get("environment"):
            problems.append(f"job {job_id}: a self-hosted job needs a protected environment")
        for name, github, allowed in GPU_SCENARIOS:
            contexts = {"github": github, "inputs": Strict("inputs", defaults), "vars": {}, "needs": {}}
            status = {"success": True, "failure": False, "always": True, "cancelled": False}
            runs = condition(job.get("if"), contexts, status)
            if allowed is False and runs:
                problems.append(f"job {job_id}: runs on {name}")
            if allowed is True and not runs:
                problems.append(f"job {job_id}: never runs, not even on {name} (a guard that is always false?)")
    return problems


def rule_action_metadata(path: Path, doc: dict[Any, Any]) -> list[str]:
    problems = [f"no {k}" for k in ("name", "description") if not doc.get(k)]
    for name, spec in (doc.get("inputs") or {}).items():
        spec = spec or {}
        if not _KEBAB.match(name):
            problems.append(f"input {name}: use kebab-case")
        if not spec.get("description"):
            problems.append(f"input {name}: no description")
        if not isinstance(spec.get("default"), str):
            problems.append(f"input {name}: the default must be a string")
    for name, spec in (doc.get("outputs") or {}).items():
        if not (spec or {}).get("description"):
            problems.append(f"output {name}: no description")
    return problems


def rule_action_steps_hardened(path: Path, doc: dict[Any, Any]) -> list[str]:
    problems = []
    for step in doc["runs"].get("steps") or []:
        name = step.get("name", "?")
        if "run" in step:
            if step.get("shell") not in ("bash", "python"):
                problems.append(f"step {name!r}: shell: bash (or python)")
            if step.get("shell") == "bash" and not step["run"].lstrip().startswith("set -euo pipefail"):
                problems.append(f"step {name!r}: start the script with set -euo pipefail")
        for key, value in (step.get("env") or {}).items():
            if "inputs." in str(value) and not key.startswith("CI_CHECKS_") and key not in ENV_NAME_EXCEPTIONS:
                problems.append(f"step {name!r}: env {key} carries an input; name it CI_CHECKS_*")
    return problems


WORKFLOW_RULES: dict[str, Callable[[Path, Any], list[str]]] = {
    "workflow-name": rule_workflow_name,
    "top-permissions-empty": rule_top_permissions_empty,
    "job-permissions-with-reason": rule_job_permissions_with_reason,
    "write-permissions-allowlist": rule_write_permissions_allowlist,
    "sha-pinned": rule_sha_pinned,
    "checkout-hardened": rule_checkout_hardened,
    "no-expressions-in-run": rule_no_expressions_in_run,
    "no-pull-request-target": rule_no_pull_request_target,
    "timeout-minutes": rule_timeout_minutes,
    "concurrency": rule_concurrency,
    "no-secrets-inherit": rule_no_secrets_inherit,
    "reusable-inputs-documented": rule_reusable_inputs_documented,
    "gpu-jobs-guarded": rule_gpu_jobs_guarded,
}
ACTION_RULES: dict[str, Callable[[Path, Any], list[str]]] = {
    "action-metadata": rule_action_metadata,
    "action-steps-hardened": rule_action_steps_hardened,
    "sha-pinned": rule_sha_pinned,
    "no-expressions-in-run": rule_no_expressions_in_run,
}


def violations(path: Path, rules: dict[str, Callable[[Path, Any], list[str]]]) -> dict[str, list[str]]:
    doc = load(path)
    return {name: found for name, rule in rules.items() if (found := rule(path, doc))}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_house_rules(path):
    assert violations(path, WORKFLOW_RULES) == {}


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: p.parent.name)
def test_action_house_rules(path):
    assert violations(path, ACTION_RULES) == {}


@pytest.mark.parametrize("path", BAD_WORKFLOWS, ids=lambda p: p.stem)
def test_each_workflow_rule_fires_on_its_bad_fixture(path):
    assert list(violations(path, WORKFLOW_RULES)) == [path.stem]


@pytest.mark.parametrize("path", BAD_ACTIONS, ids=lambda p: p.parent.name)
def test_each_action_rule_fires_on_its_bad_fixture(path):
    assert list(violations(path, ACTION_RULES)) == [path.parent.name]


def test_every_rule_has_a_bad_fixture():
    assert {p.stem for p in BAD_WORKFLOWS} == set(WORKFLOW_RULES)
    assert {p.parent.name for p in BAD_ACTIONS} == set(ACTION_RULES)


def test_pinned_versions_agree_across_files():
    """One SHA per third-party action and version everywhere, so an update cannot leave a stale copy behind."""
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS + ACTIONS:
        for line in path.read_text().splitlines():
            m = re.search(r"uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})\s*#\s*(v[\d.]+)", line)
            if m:
                pins.setdefault(m.group(1), set()).add(f"{m.group(2)} {m.group(3)}")
    assert pins and all(len(v) == 1 for v in pins.values()), pins


# ---------------------------------------------------------------- self-test structure


@pytest.mark.parametrize("workflow", ["ci.yml", "ml-ci.yml"])
def test_aggregator_needs_every_job(workflow):
    doc = load(ROOT / ".github" / "workflows" / workflow)
    others = set(jobs(doc)) - {"passed"}
    passed = jobs(doc)["passed"]
    assert set(passed["needs"]) == others
    assert passed["if"] == "always()"


def test_ci_calls_every_reusable_workflow_and_every_action():
    # The deprecated aliases are the exception: nothing of ours calls them, and the tests below check that they
    # forward everything (tests/test_actions.py also runs the alias actions).
    used: set[str] = set()
    for path in WORKFLOWS:
        for _, uses in _uses(path, load(path)):
            used.add(uses)
    called = {u.removeprefix("$/.github/workflows/") for u in used if u.startswith("$/.github/workflows/")}
    reusable = {p.name for p in WORKFLOWS if "workflow_call" in triggers(load(p))}
    assert reusable - set(DEPRECATED_WORKFLOWS) <= called
    assert not called & set(DEPRECATED_WORKFLOWS), "call the new names"
    ci = {u for _, u in _uses(WORKFLOWS[0].parent / "ci.yml", load(WORKFLOWS[0].parent / "ci.yml"))}
    assert {
        f"$/.github/workflows/{w}" for w in ("ml-ci.yml", "lint.yml", "pytest.yml", "report.yml", "rerun.yml")
    } <= ci
    actions = {u.removeprefix("$/actions/") for u in used if u.startswith("$/actions/")}
    assert actions == {p.parent.name for p in ACTIONS} - set(DEPRECATED_ACTIONS)


def test_one_name_per_capability():
    """A reusable workflow that runs one capability is named like its action: pytest.yml runs actions/pytest."""
    for path in WORKFLOWS:
        if path.name in DEPRECATED_WORKFLOWS or "workflow_call" not in triggers(load(path)):
            continue
        ours = {u.removeprefix("$/actions/") for _, u in _uses(path, load(path)) if u.startswith("$/actions/")}
        if path.stem != "ml-ci":  # the umbrella runs them all
            assert path.stem in ours, f"{path.name} does not run actions/{path.stem}"
        assert load(path)["name"] == f"ci-checks {path.stem}", path.name


def test_concurrency_groups_and_artifact_names_are_unique():
    """A caller and the workflow it calls must not share a concurrency group (a deadlock), and two uploads must not
    share an artifact name in one run."""
    groups = {p.name: load(p)["concurrency"]["group"] for p in WORKFLOWS}
    assert len(set(groups.values())) == len(groups), groups
    for name, group in groups.items():
        if "workflow_call" in triggers(load(ROOT / ".github" / "workflows" / name)):
            assert group.startswith(f"ci-checks-{name.removesuffix('.yml')}-"), (name, group)
    artifacts = [
        step["with"]["name"]
        for path in WORKFLOWS
        for _, step in steps_of(path, load(path))
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert len(set(artifacts)) == len(artifacts), artifacts


@pytest.mark.parametrize("path", [p for p in WORKFLOWS if "workflow_call" in triggers(load(p))], ids=lambda p: p.name)
def test_each_call_has_its_own_artifacts_and_concurrency_group(path):
    """Two calls of one reusable workflow in a run differ in artifact-prefix (or project folder, or tiers): their
    artifacts, downloads and concurrency groups must then differ too, or they overwrite or cancel each other."""
    doc = load(path)
    inputs = triggers(doc)["workflow_call"].get("inputs") or {}
    group = doc["concurrency"]["group"]
    for name in ("artifact-prefix", "working-directory", "tiers"):
        if name in inputs:
            assert f"inputs.{name}" in group, f"{path.name}: the concurrency group lacks {name}"
    for _, step in steps_of(path, doc):
        uses = str(step.get("uses", ""))
        if uses.startswith(("actions/upload-artifact@", "actions/download-artifact@")):
            name = (step.get("with") or {}).get("name") or (step.get("with") or {}).get("pattern")
            assert str(name).startswith("${{ inputs.artifact-prefix }}-"), (path.name, name)
            # A pattern matches other calls' artifacts (prefix "ci-checks" matches "ci-checks-self-..."): exact
            # names only, but for the rerun matrix, whose names end in a job index.
            if "pattern" in (step.get("with") or {}):
                assert name == "${{ inputs.artifact-prefix }}-rerun-*", (path.name, name)


def _group(path: Path, github: dict[str, Any], **inputs: str) -> str:
    from _github_actions import interpolate

    doc = load(path)
    defaults = {k: v.get("default", "") for k, v in triggers(doc)["workflow_call"]["inputs"].items()}
    return interpolate(doc["concurrency"]["group"], {"github": github, "inputs": Strict("inputs", defaults | inputs)})


def test_two_calls_of_ml_ci_do_not_cancel_each_other():
    path, github = ROOT / ".github" / "workflows" / "ml-ci.yml", {**_scenario("push"), "workflow": "ML CI"}
    default = _group(path, github)
    assert _group(path, github, **{"artifact-prefix": "gpu"}) != default
    assert _group(path, github, tiers='["rerun"]') != default, "a CPU call and a GPU call of one project"
    assert _group(path, github, **{"working-directory": "other"}) != default
    assert _group(path, github) == default, "the next push's run of the same call cancels this one"


def _called_permissions(doc: dict[str, Any]) -> dict[str, str]:
    """The union of the permissions the jobs of a called workflow ask for (a caller can only narrow them)."""
    union: dict[str, str] = {}
    for job in jobs(doc).values():
        for scope, level in (job.get("permissions") or {}).items():
            union[scope] = "write" if "write" in (level, union.get(scope)) else level
    return union


@pytest.mark.parametrize(("old", "new"), DEPRECATED_WORKFLOWS.items(), ids=list(DEPRECATED_WORKFLOWS))
def test_deprecated_workflow_forwards_every_input_secret_and_output(old, new):
    alias, target = (load(ROOT / ".github" / "workflows" / name) for name in (old, new))
    assert set(triggers(alias)) == {"workflow_call"} and "deprecated" in alias["name"]
    call, target_call = triggers(alias)["workflow_call"], triggers(target)["workflow_call"]
    assert call.get("inputs") == target_call.get("inputs"), "the same inputs, types, defaults and descriptions"
    assert call.get("secrets") == target_call.get("secrets")
    forward = [(job_id, job) for job_id, job in jobs(alias).items() if "uses" in job]
    assert len(forward) == 1, "one job calls the new workflow"
    job_id, job = forward[0]
    assert job["uses"] == f"$/.github/workflows/{new}" and "if" not in job
    assert (job.get("with") or {}) == {name: f"${{{{ inputs.{name} }}}}" for name in target_call.get("inputs") or {}}
    assert (job.get("secrets") or {}) == {
        name: f"${{{{ secrets.{name} }}}}" for name in target_call.get("secrets") or {}
    }
    assert {k: v["description"] for k, v in (call.get("outputs") or {}).items()} == {
        k: v["description"] for k, v in (target_call.get("outputs") or {}).items()
    }
    assert {k: v["value"] for k, v in (call.get("outputs") or {}).items()} == {
        k: f"${{{{ jobs.{job_id}.outputs.{k} }}}}" for k in target_call.get("outputs") or {}
    }
    assert job["permissions"] == _called_permissions(target)
    warning = f".github/workflows/{old} is deprecated: use .github/workflows/{new}; removed in v0.2.0"
    warning = f"::warning title=ci-checks::{warning}"
    assert any(warning in str(step.get("run", "")) for _, step in steps_of(ROOT, alias))


@pytest.mark.parametrize(("old", "new"), [("tests", "pytest"), ("gpu-rerun", "rerun")])
def test_ml_ci_still_takes_the_deprecated_tier_names(old, new):
    job = jobs(load(ROOT / ".github" / "workflows" / "ml-ci.yml"))[new]
    status = {"success": True, "failure": False, "always": True, "cancelled": False}
    for tiers, runs in ((f'["{new}"]', True), (f'["{old}"]', True), ('["lint"]', False)):
        contexts = {"inputs": Strict("inputs", {"tiers": tiers}), "github": _scenario("push")}
        assert condition(job["if"], contexts, status) is runs, tiers


def test_every_deprecated_alias_is_listed():
    marked = {p.name for p in WORKFLOWS if "deprecated" in load(p)["name"]}
    assert marked == set(DEPRECATED_WORKFLOWS)
    assert {p.parent.name for p in ACTIONS if load(p)["description"].startswith("Deprecated")} == set(
        DEPRECATED_ACTIONS
    )


def test_ci_has_a_case_that_must_fail():
    job = jobs(load(ROOT / ".github" / "workflows" / "ci.yml"))["train-check-must-fail"]
    buggy = next(s for s in job["steps"] if s.get("id") == "buggy")
    assert buggy["with"]["spec"] == "buggy_spec.py:training_spec" and buggy["continue-on-error"] is True
    assert "steps.buggy.outcome" in json.dumps(job["steps"][-1]["env"])


def _permissions_needed(path: Path) -> dict[str, str]:
    """What a caller of this reusable workflow must grant: the union over its jobs and, through `uses:`, over the
    jobs of the workflows it calls. GitHub checks it when the run starts, whatever the jobs' `if:` say."""
    union: dict[str, str] = {}
    doc = load(path)
    for job in jobs(doc).values():
        if str(job.get("uses", "")).startswith("$/.github/workflows/"):
            wanted = _permissions_needed(ROOT / job["uses"].removeprefix("$/"))
            granted = job.get("permissions") or {}
            for scope, level in wanted.items():
                assert _LEVEL[granted.get(scope, "none")] >= _LEVEL[level], (path.name, job["uses"], scope)
        for scope, level in (job.get("permissions") or doc.get("permissions") or {}).items():
            union[scope] = max(level, union.get(scope, "none"), key=_LEVEL.__getitem__)
    return union


_LEVEL = {"none": 0, "read": 1, "write": 2}


def test_ml_ci_needs_only_contents_read():
    """A caller can keep every token of its run read-only: commenting lives in report.yml."""
    assert _permissions_needed(ROOT / ".github" / "workflows" / "ml-ci.yml") == {"contents": "read"}
    assert _permissions_needed(ROOT / ".github" / "workflows" / "report.yml") == {
        "contents": "read",
        "pull-requests": "write",
    }


def test_report_yml_comments_only_on_same_repository_pull_requests():
    job = jobs(load(ROOT / ".github" / "workflows" / "report.yml"))["report"]
    status = {"success": True, "failure": False, "always": True, "cancelled": False}
    inputs = Strict("inputs", {"comment": "builtin"})
    for github, runs in (
        (_scenario("pull_request"), True),
        (_scenario("pull_request", event=FORK_PR), False),
        (_scenario("push"), False),
        (_scenario("pull_request_target", event=FORK_PR), False),
    ):
        assert condition(job["if"], {"github": github, "inputs": inputs}, status) is runs, github["event_name"]


def test_a_fork_pull_request_does_not_pull_dvc_data():
    """A fork's pull request has no secrets: ml-ci.yml skips `dvc pull` for it and says so, instead of failing."""
    from _github_actions import evaluate

    doc = load(ROOT / ".github" / "workflows" / "ml-ci.yml")
    fork_flag = doc["env"]["CI_CHECKS_FORK_PR"].strip().removeprefix("${{").removesuffix("}}")
    for job_id in ("train-check", "compare"):
        steps = jobs(doc)[job_id]["steps"]
        setup = next(s for s in steps if s.get("uses") == "$/actions/setup")
        notice = next(s for s in steps if "DVC data is not pulled" in s.get("name", ""))
        pull = setup["with"]["dvc-pull"].strip().removeprefix("${{").removesuffix("}}")
        for github, fork in ((_scenario("pull_request", event=FORK_PR), True), (_scenario("pull_request"), False)):
            env = {"CI_CHECKS_FORK_PR": "true" if evaluate(fork_flag, {"github": github}) else "false"}
            assert (env["CI_CHECKS_FORK_PR"] == "true") is fork
            contexts = {"github": github, "env": env, "inputs": Strict("inputs", {"dvc-pull": True})}
            assert evaluate(pull, contexts) is (not fork), (job_id, fork)
            assert (
                condition(
                    notice["if"], contexts, {"success": True, "failure": False, "always": True, "cancelled": False}
                )
                is fork
            )
            contexts["inputs"] = Strict("inputs", {"dvc-pull": False})
            assert evaluate(pull, contexts) is False


# ---------------------------------------------------------------- the runner pre-job hook


def _hook(tmp_path: Path, event: str, payload: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    base = {
        "PATH": os.environ["PATH"],
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_REF": "refs/heads/main",
    }
    return subprocess.run(["bash", str(HOOK)], env={**base, **env}, capture_output=True, text=True, timeout=30)


SAME_PR = {"pull_request": {"head": {"repo": {"full_name": "owner/repo", "fork": False}}}}
MAIN_PUSH = {"repository": {"default_branch": "main"}}


@pytest.mark.parametrize(
    ("event", "payload", "env", "allowed", "reason"),
    [
        pytest.param("pull_request", SAME_PR, {"GITHUB_REF": "refs/pull/3/merge"}, True, "", id="same-repo-pr"),
        pytest.param("push", MAIN_PUSH, {}, True, "", id="push-default-branch"),
        pytest.param("schedule", {}, {}, True, "", id="schedule"),
        pytest.param("workflow_dispatch", {}, {}, True, "", id="dispatch"),
        pytest.param("pull_request", FORK_PR, {}, False, "fork attacker/repo", id="fork-pr"),
        pytest.param(
            "pull_request",
            {"pull_request": {"head": {"repo": None}}},
            {},
            False,
            "head repository is unknown",
            id="deleted-fork",
        ),
        pytest.param(
            "pull_request",
            {
                "pull_request": {
                    "head": {"repo": {"full_name": "Owner/Repo", "fork": True, "id": 7}},
                    "base": {"repo": {"full_name": "owner/repo", "fork": True, "id": 7}},
                }
            },
            {},
            True,
            "",
            id="same-repo-pr-in-a-repository-that-is-a-fork",
        ),
        pytest.param(
            "pull_request",
            {
                "pull_request": {
                    "head": {"repo": {"full_name": "owner/repo", "id": 8}},
                    "base": {"repo": {"full_name": "owner/repo", "id": 7}},
                }
            },
            {},
            False,
            "fork owner/repo",
            id="same-name-other-repository-id",
        ),
        pytest.param(
            "release",
            {},
            {"CI_CHECKS_ALLOWED_EVENTS": "push release"},
            False,
            "event 'release' has no rule in this hook",
            id="unknown-event-fails-closed",
        ),
        pytest.param(
            "pull_request_target",
            SAME_PR,
            {"CI_CHECKS_ALLOWED_EVENTS": "pull_request_target"},
            False,
            "pull_request_target can be triggered by anyone",
            id="pull-request-target-even-when-allowed",
        ),
        pytest.param(
            "merge_group",
            {"merge_group": {"base_ref": "refs/heads/main"}, **MAIN_PUSH},
            {"CI_CHECKS_ALLOWED_EVENTS": "merge_group", "GITHUB_REF": "refs/heads/gh-readonly-queue/main/pr-1-abc"},
            True,
            "",
            id="merge-queue-of-the-default-branch",
        ),
        pytest.param(
            "merge_group",
            {"merge_group": {"base_ref": "refs/heads/dev"}, **MAIN_PUSH},
            {"CI_CHECKS_ALLOWED_EVENTS": "merge_group"},
            False,
            "merge queue of refs/heads/dev",
            id="merge-queue-of-another-branch",
        ),
        pytest.param("pull_request_target", SAME_PR, {}, False, "not allowed", id="pull-request-target"),
        pytest.param("issue_comment", {}, {}, False, "not allowed", id="issue-comment"),
        pytest.param("workflow_run", {}, {}, False, "not allowed", id="workflow-run"),
        pytest.param(
            "push",
            MAIN_PUSH,
            {"GITHUB_REF": "refs/heads/feature"},
            False,
            "only pushes to refs/heads/main",
            id="push-feature-branch",
        ),
        pytest.param(
            "push",
            MAIN_PUSH,
            {"GITHUB_REF": "refs/heads/feature", "CI_CHECKS_ALLOW_ANY_BRANCH": "1"},
            True,
            "",
            id="push-any-branch-opt-in",
        ),
        pytest.param(
            "push",
            MAIN_PUSH,
            {"CI_CHECKS_ALLOWED_REPOSITORIES": "owner/other"},
            False,
            "repository 'owner/repo' is not allowed",
            id="repository-allowlist",
        ),
        pytest.param(
            "push", MAIN_PUSH, {"GITHUB_EVENT_PATH": "/nonexistent.json"}, False, "cannot be read", id="no-payload"
        ),
    ],
)
def test_runner_pre_job_hook(tmp_path, event, payload, env, allowed, reason):
    done = _hook(tmp_path, event, payload, **env)
    assert (done.returncode == 0) is allowed, done.stderr
    if not allowed:
        assert done.returncode == 1 and reason in done.stderr
        assert "::error title=Refused by the runner's pre-job hook::" in done.stdout


def test_runner_pre_job_hook_refuses_unreadable_json(tmp_path):
    (tmp_path / "event.json").write_text("{not json")
    done = subprocess.run(
        ["bash", str(HOOK)],
        env={
            "PATH": os.environ["PATH"],
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
            "GITHUB_REPOSITORY": "owner/repo",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "not readable JSON" in done.stderr


def test_runner_pre_job_hook_passes_shellcheck():
    done = run_tool(tool("shellcheck"), str(HOOK))
    assert done.returncode == 0, done.stdout


# ---------------------------------------------------------------- the GPU environment's protection


class _Environments(BaseHTTPRequestHandler):
    """GET /repos/owner/repo/environments/NAME, answering from `answers`: name -> (status, body)."""

    answers: dict[str, tuple[int, Any]] = {}
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append((self.path, self.headers.get("Authorization")))
        status, body = self.answers.get(self.path.rsplit("/", 1)[-1], (404, {"message": "Not Found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


REVIEWERS = {"type": "required_reviewers", "reviewers": [{"type": "User", "reviewer": {"login": "alice"}}]}


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        pytest.param("gpu", "the environment 'gpu' has required reviewers", id="protected"),
        pytest.param(
            "bare",
            "::warning title=ci-checks rerun::the environment 'bare' has no required reviewers",
            id="created-on-first-use",
        ),
        pytest.param(
            "branch-only",
            "::warning title=ci-checks rerun::the environment 'branch-only' has no required reviewers",
            id="only-a-branch-policy",
        ),
        pytest.param(
            "private",
            "::notice title=ci-checks rerun::could not read the protection rules of the environment 'private'",
            id="unreadable",
        ),
    ],
)
def test_the_rerun_job_warns_when_its_environment_has_no_reviewers(tmp_path, environment, expected):
    step = next(
        s
        for s in jobs(load(ROOT / ".github" / "workflows" / "rerun.yml"))["rerun"]["steps"]
        if s.get("name") == "Check that the environment has required reviewers"
    )
    assert step["shell"] == "python" and set(step["env"]) == {
        "CI_CHECKS_ENVIRONMENT",
        "CI_CHECKS_REPOSITORY",
        "CI_CHECKS_API_URL",
        "CI_CHECKS_TOKEN",
    }
    _Environments.answers = {
        "gpu": (200, {"name": "gpu", "protection_rules": [{"type": "branch_policy"}, REVIEWERS]}),
        "bare": (200, {"name": "bare", "protection_rules": []}),
        "branch-only": (200, {"name": "branch-only", "protection_rules": [{"type": "branch_policy"}]}),
        "private": (403, {"message": "Resource not accessible by integration"}),
    }
    _Environments.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Environments)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = tmp_path / "step.py"
    script.write_text(step["run"])
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            env={
                "PATH": os.environ["PATH"],
                "CI_CHECKS_ENVIRONMENT": environment,
                "CI_CHECKS_REPOSITORY": "owner/repo",
                "CI_CHECKS_API_URL": f"http://127.0.0.1:{server.server_port}",
                "CI_CHECKS_TOKEN": "t0ken",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr  # a warning, never a failed job
    assert expected in done.stdout
    assert _Environments.seen == [(f"/repos/owner/repo/environments/{environment}", "Bearer t0ken")]


# ---------------------------------------------------------------- the integration docs


DOCS = ROOT / "docs" / "workflows.md"


def _docs_section(title: str) -> str:
    """The section under the heading `title` of docs/workflows.md, down to the next heading of its level or above."""
    lines = DOCS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"#+ `{re.escape(title)}`", line))
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start:end])


@pytest.mark.parametrize(
    "path", [p for p in ACTIONS if p.parent.name not in DEPRECATED_ACTIONS], ids=lambda p: p.parent.name
)
def test_docs_list_every_action_input_and_output(path):
    section, doc = _docs_section(f"actions/{path.parent.name}"), load(path)
    for name in [*(doc.get("inputs") or {}), *(doc.get("outputs") or {})]:
        assert f"| `{name}` |" in section, f"docs/workflows.md: actions/{path.parent.name} lacks {name}"


@pytest.mark.parametrize(
    "path",
    [p for p in WORKFLOWS if "workflow_call" in triggers(load(p)) and p.name not in DEPRECATED_WORKFLOWS],
    ids=lambda p: p.name,
)
def test_docs_list_every_workflow_input_secret_and_output(path):
    section, call = _docs_section(f".github/workflows/{path.name}"), triggers(load(path))["workflow_call"]
    for kind in ("inputs", "secrets", "outputs"):
        for name in call.get(kind) or {}:
            assert f"| `{name}` |" in section, f"docs/workflows.md: {path.name} lacks {kind[:-1]} {name}"


def test_docs_list_every_deprecated_name():
    section = DOCS.read_text().split("## Deprecated names", 1)[1].split("\n## ", 1)[0]
    for old, new in [*DEPRECATED_WORKFLOWS.items(), *DEPRECATED_ACTIONS.items()]:
        prefix = ".github/workflows/" if old.endswith(".yml") else "actions/"
        assert re.search(rf"^\| `{prefix}{old}` \| .*`{prefix}{new}`", section, re.M), old


def _caller_problems(workflow: Path, tmp_path: Path) -> dict[str, Any]:
    """Check a workflow that calls the kit's reusable workflows as a user's repository would; return its jobs."""
    doc = load(workflow)
    assert doc["permissions"] == {} and "pull_request_target" not in triggers(doc)
    # A user pins the kit by tag or by SHA (their choice, see security.md); every other house rule holds.
    assert violations(workflow, {k: v for k, v in WORKFLOW_RULES.items() if k != "sha-pinned"}) == {}
    done = run_tool(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow))
    assert done.returncode == 0, done.stdout
    for job_id, job in jobs(doc).items():
        m = re.fullmatch(r"OWNER/ci-checks/(\.github/workflows/[\w-]+\.yml)@v[\d.]+", job["uses"])
        assert m, (job_id, job["uses"])
        called = ROOT / m.group(1)
        granted = job.get("permissions") or {}
        for scope, level in _permissions_needed(called).items():
            assert _LEVEL[granted.get(scope, "none")] >= _LEVEL[level], f"{job_id} must grant {scope}: {level}"
        inputs = triggers(load(called))["workflow_call"].get("inputs") or {}
        assert set(job.get("with") or {}) <= set(inputs), job_id
        if "tiers" in (job.get("with") or {}):
            tiers = set(json.loads(job["with"]["tiers"]))
            assert tiers <= {j for j in jobs(load(called)) if j != "passed"}
    return jobs(doc)


def test_the_readme_workflow_is_what_init_writes(tmp_path):
    """The README's snippet is `ci-checks init`'s workflow for the tag in pyproject.toml: one text, two places."""
    from ci_checks import __version__
    from ci_checks.commands.init import Pin, workflow_text

    text = workflow_text(Pin("OWNER/ci-checks", f"v{__version__}", __version__), branch="main")
    block = re.search(r"```yaml\n(# ci-checks: lint, tests.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block and block.group(1) == text, "README.md's workflow differs from ci-checks init's"
    workflow = tmp_path / "ml-ci.yml"
    workflow.write_text(text)
    assert set(_caller_problems(workflow, tmp_path)) == {"ml-ci", "report"}


def test_init_pinned_by_sha_passes_the_strict_pin_rule(tmp_path):
    from ci_checks.commands.init import Pin, workflow_text

    workflow = tmp_path / "ml-ci.yml"
    workflow.write_text(workflow_text(Pin("OWNER/ci-checks", "ab" * 20, "0.1.0"), branch="main"))
    assert rule_sha_pinned(workflow, load(workflow)) == []
    workflow.write_text(workflow_text(Pin("OWNER/ci-checks", "v0.1.0", "0.1.0"), branch="main"))
    assert len(rule_sha_pinned(workflow, load(workflow))) == 2


def test_the_docs_workflow_is_valid(tmp_path):
    block = re.search(r"```yaml\n(# ci-checks: lint, tests.*?)```", DOCS.read_text(), re.S)
    assert block, "the one-block example is missing from docs/workflows.md"
    workflow = tmp_path / "ml-ci.yml"
    workflow.write_text(block.group(1))
    assert set(_caller_problems(workflow, tmp_path)) == {"ml-ci", "report"}


def test_the_caller_check_fires_when_a_caller_grants_too_little(tmp_path):
    from ci_checks.commands.init import Pin, workflow_text

    text = workflow_text(Pin("OWNER/ci-checks", "v0.1.0", "0.1.0"), branch="main")
    workflow = tmp_path / "ml-ci.yml"
    workflow.write_text(text.replace("      pull-requests: write # create or update the one sticky comment\n", ""))
    with pytest.raises(AssertionError, match="report must grant pull-requests: write"):
        _caller_problems(workflow, tmp_path)


def _workflow_docs() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("workflow_docs", ROOT / "scripts" / "workflow_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_tables_are_generated_from_the_yaml():
    """docs/workflows.md's tables are scripts/workflow_docs.py's output: run it after changing an input."""
    docs = _workflow_docs()
    page = DOCS.read_text()
    assert docs.render(page) == page, "docs/workflows.md is out of date: python scripts/workflow_docs.py"
    assert docs.main(["--check"]) == 0


def test_the_docs_table_check_fires_on_a_changed_description(tmp_path):
    docs = _workflow_docs()
    for folder in (".github/workflows", "actions/setup"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    setup = tmp_path / "actions" / "setup" / "action.yml"
    setup.write_text(setup.read_text().replace("Package-manager cache", "The package-manager cache"))
    page = DOCS.read_text()
    assert docs.render(page, tmp_path) != page
    assert "| `cache` | `pip` | The package-manager cache" in docs.render(page, tmp_path)
