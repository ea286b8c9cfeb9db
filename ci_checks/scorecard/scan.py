"""Read a repository (its working tree or a git revision) for what runs in CI: workflows, actions, hooks, configs.

A command counts as run only when a workflow that something triggers runs it: a job calling ci-checks' reusable
workflow with that tier, a step using ci-checks' action, or a `run:` script calling `ci-checks <command>`.
Reusable workflows of the repository itself are followed from the jobs that call them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_checks import _git
from ci_checks._errors import UserError

WORKFLOWS = ".github/workflows"
# ci-checks' reusable workflows: the commands each runs (ml-ci.yml: its `tiers` input, else these defaults).
ML_CI = "ml-ci.yml"
ML_CI_DEFAULT_TIERS = ("lint", "pytest", "train-check", "compare", "report")
TIER_ALIASES = {"tests": "pytest", "gpu-rerun": "rerun"}
KIT_WORKFLOWS: dict[str, tuple[str, ...]] = {
    "pytest.yml": ("pytest",),
    "lint.yml": ("lint",),
    "report.yml": ("report",),
    "rerun.yml": ("rerun",),
}
# ci-checks' actions (actions/<name>) and the command each runs.
KIT_ACTIONS = {
    "compare": "compare",
    "export-parity": "export-parity",
    "lint": "lint",
    "pytest": "pytest",
    "test": "pytest",
    "report": "report",
    "rerun": "rerun",
    "rerun-training": "rerun",
    "train-check": "train-check",
    "golden": "golden",
    "quality": "quality",
    "data-check": "data-check",
    "data-stats": "data-stats",
    "rollback": "rollback",
    "score": "score",
}
COMMAND_RE = re.compile(r"(?:\bci-checks|\bpython3?\s+-m\s+ci_checks)\s+([a-z][a-z-]*)")
RUN_PATTERNS = {
    # a command of its own: at a line's start or after ; & |, not an argument (pip install pytest)
    "pytest": re.compile(r"(?m)(?:^\s*|[;&|]\s*)(?:\S*python3?\s+-m\s+|\S*/)?pytest(?:\s|$)"),
    "dvc repro": re.compile(r"(?m)(?:^\s*|[;&|]\s*)(?:\S*python3?\s+-m\s+|\S*/)?dvc\s+repro\b"),
    "lint": re.compile(r"(?m)(?:^\s*|[;&|]\s*)(?:\S*python3?\s+-m\s+|\S*/)?pre-commit\s+run\b"),
}
DEPENDENCY_BOTS = {
    ".github/dependabot.yml": "Dependabot",
    ".github/dependabot.yaml": "Dependabot",
    "renovate.json": "Renovate",
    "renovate.json5": "Renovate",
    ".github/renovate.json": "Renovate",
    ".github/renovate.json5": "Renovate",
    ".renovaterc": "Renovate",
    ".renovaterc.json": "Renovate",
}
MAX_DEPTH = 4


class Tree:
    """Files of the repository, by path relative to its top folder with '/'."""

    label = "working tree"

    def files(self) -> list[str]:
        raise NotImplementedError

    def read(self, path: str) -> str | None:
        raise NotImplementedError


class WorkTree(Tree):
    def __init__(self, root: str) -> None:
        self.root = root

    def files(self) -> list[str]:
        import os

        out = []
        folder = os.path.join(self.root, *WORKFLOWS.split("/"))
        if os.path.isdir(folder):
            out += [f"{WORKFLOWS}/{n}" for n in sorted(os.listdir(folder))]
        return out + [p for p in (*DEPENDENCY_BOTS, ".pre-commit-config.yaml") if self.read(p) is not None]

    def read(self, path: str) -> str | None:
        import os

        full = os.path.join(self.root, *path.split("/"))
        if not os.path.isfile(full):
            return None
        try:
            with open(full, encoding="utf-8") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{full}: cannot be read ({e}); fix or remove it") from None


class GitTree(Tree):
    def __init__(self, top: str, ref: str, sha: str) -> None:
        self.top, self.ref, self.sha = top, ref, sha
        self.label = ref
        listed = _git.run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", sha], top, check=False)
        self._files = set(filter(None, listed.stdout.split("\0"))) if listed.returncode == 0 else set()

    def files(self) -> list[str]:
        return sorted(
            f for f in self._files if f.startswith(WORKFLOWS + "/") and "/" not in f[len(WORKFLOWS) + 1 :]
        ) + [p for p in (*DEPENDENCY_BOTS, ".pre-commit-config.yaml") if p in self._files]

    def read(self, path: str) -> str | None:
        if path not in self._files:
            return None
        out = _git.run(["cat-file", "blob", f"{self.sha}:{path}"], self.top, check=False)
        return out.stdout if out.returncode == 0 else None


@dataclass(frozen=True)
class Use:
    """One place in CI that runs a command."""

    command: str
    file: str
    job: str = ""
    how: str = ""
    scheduled: bool = False

    def where(self) -> str:
        job = f" (job {self.job}" + (f", {self.how})" if self.how else ")") if self.job else ""
        return f"{self.file}{job}"


@dataclass
class Scan:
    uses: list[Use] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)  # ci-checks hooks in .pre-commit-config.yaml
    workflows: list[str] = field(default_factory=list)

    def running(self, command: str) -> list[Use]:
        return [u for u in self.uses if u.command == command]


def load_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: not valid YAML ({problem}{at}); fix the file") from None


def _triggers(doc: Mapping[Any, Any]) -> set[str]:
    # YAML 1.1 reads a bare `on:` key as True
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(t) for t in on}
    if isinstance(on, Mapping):
        return {str(t) for t in on}
    return set()


def _local_workflow(uses: str) -> str | None:
    for prefix in ("./", "$/"):
        if uses.startswith(prefix + WORKFLOWS + "/"):
            return uses[len(prefix) :].split("@")[0]
    return None


def _kit_path(uses: str) -> str | None:
    """The path inside ci-checks' repository a `uses:` names (actions/x, .github/workflows/x.yml), else None."""
    for prefix in ("./", "$/"):
        if uses.startswith(prefix + "actions/"):
            return uses[len(prefix) :].split("@")[0]
    m = re.match(r"([^/@\s]+)/([^/@\s]+)/([^@\s]+)@", uses)
    if m and "ci-checks" in m.group(2).lower():
        return m.group(3)
    return None


def _tiers(with_: Any, where: str) -> list[str]:
    raw = with_.get("tiers") if isinstance(with_, Mapping) else None
    if raw is None:
        return list(ML_CI_DEFAULT_TIERS)
    if isinstance(raw, str) and "${{" in raw:
        return []  # chosen at run time: nothing is known to run
    try:
        tiers = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise UserError(f"{where}: tiers {raw!r} is not a JSON list string such as '[\"compare\"]'; fix it") from None
    if not isinstance(tiers, list):
        raise UserError(f"{where}: tiers {raw!r} is not a JSON list string such as '[\"compare\"]'; fix it")
    return [TIER_ALIASES.get(str(t), str(t)) for t in tiers]


def scan(tree: Tree) -> Scan:
    """Everything the repository's CI runs, with where."""
    result = Scan()
    docs: dict[str, Mapping[Any, Any]] = {}
    for path in tree.files():
        if not path.startswith(WORKFLOWS + "/") or not path.endswith((".yml", ".yaml")):
            continue
        text = tree.read(path)
        if text is None:
            continue
        doc = load_yaml(text, _label(tree, path))
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise UserError(f"{_label(tree, path)}: a workflow must be a YAML mapping (name, on, jobs); fix the file")
        docs[path] = doc
        result.workflows.append(path)
    for path, doc in docs.items():
        triggers = _triggers(doc)
        if triggers <= {"workflow_call", "workflow_dispatch"}:
            continue  # runs only when called (followed from its callers) or by hand: not a system that runs it
        _jobs(tree, docs, path, doc, result, scheduled="schedule" in triggers, entry=path, depth=0, seen=(path,))
    for path, bot in DEPENDENCY_BOTS.items():
        if tree.read(path) is not None:
            result.uses.append(Use("dependency-updates", path, how=bot, scheduled=True))
    hooks_text = tree.read(".pre-commit-config.yaml")
    if hooks_text is not None:
        config = load_yaml(hooks_text, _label(tree, ".pre-commit-config.yaml"))
        repos = config.get("repos") if isinstance(config, Mapping) else None
        for repo in repos if isinstance(repos, list) else []:
            for hook in (repo.get("hooks") or []) if isinstance(repo, Mapping) else []:
                if isinstance(hook, Mapping) and str(hook.get("id", "")).startswith("ci-checks-"):
                    result.hooks.append(str(hook["id"]))
    return result


def _label(tree: Tree, path: str) -> str:
    return path if isinstance(tree, WorkTree) else f"{path} at {tree.label}"


def _jobs(
    tree: Tree,
    docs: Mapping[str, Mapping[Any, Any]],
    path: str,
    doc: Mapping[Any, Any],
    result: Scan,
    *,
    scheduled: bool,
    entry: str,
    depth: int,
    seen: tuple[str, ...],
    caller_job: str = "",
) -> None:
    jobs = doc.get("jobs")
    if not isinstance(jobs, Mapping):
        return
    for job_id, job in jobs.items():
        if not isinstance(job, Mapping):
            continue
        label = caller_job or str(job_id)

        def add(command: str, how: str) -> None:
            result.uses.append(Use(command, entry, label, how, scheduled))

        uses = job.get("uses")
        if isinstance(uses, str):
            local = _local_workflow(uses)
            kit = _kit_path(uses)
            name = (local or kit or "").rsplit("/", 1)[-1]
            called = docs.get(local) if local else None
            if (kit or local) and name == ML_CI and (kit or _has_tiers_input(called)):
                for tier in _tiers(job.get("with"), _label(tree, path)):
                    add(tier, f"{ML_CI} tier {tier}")
            elif kit and not local and name in KIT_WORKFLOWS:
                for command in KIT_WORKFLOWS[name]:
                    add(command, name)
            elif local and called is not None and local not in seen and depth < MAX_DEPTH:
                _jobs(
                    tree,
                    docs,
                    local,
                    called,
                    result,
                    scheduled=scheduled,
                    entry=entry,
                    depth=depth + 1,
                    seen=(*seen, local),
                    caller_job=label,
                )
            continue
        for step in job.get("steps") or []:
            if not isinstance(step, Mapping):
                continue
            step_uses = step.get("uses")
            if isinstance(step_uses, str):
                kit = _kit_path(step_uses)
                if kit and kit.startswith("actions/"):
                    action = kit.split("/")[1]
                    if action in KIT_ACTIONS:
                        add(KIT_ACTIONS[action], f"actions/{action}")
            script = step.get("run")
            if isinstance(script, str):
                for m in COMMAND_RE.finditer(script):
                    if m.group(1) in known_commands():
                        add(m.group(1), f"run: ci-checks {m.group(1)}")
                for command, pattern in RUN_PATTERNS.items():
                    if pattern.search(script):
                        add(command, f"run: {command}")


def known_commands() -> set[str]:
    """The subcommands of ci-checks, with those of the training checks and the data and quality commands."""
    from ci_checks.checks import names
    from ci_checks.commands import COMMANDS

    return {*COMMANDS, *names(), "quality", "data-check", "data-stats"}


def _has_tiers_input(doc: Mapping[Any, Any] | None) -> bool:
    if not isinstance(doc, Mapping):
        return False
    on = doc.get("on", doc.get(True))
    call = on.get("workflow_call") if isinstance(on, Mapping) else None
    inputs = call.get("inputs") if isinstance(call, Mapping) else None
    return isinstance(inputs, Mapping) and "tiers" in inputs
