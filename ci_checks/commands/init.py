"""init: adopt ci-checks in a repository: a spec template, [tool.ci-checks], the CI workflow and the pre-commit hooks.

Four parts, each written only when it is missing or can be merged without touching anything else:

- ``spec``: a training spec template (``ci_spec.py``) whose TODOs say what to fill in; until they are filled in it
  raises, so a forgotten template fails ``train-check`` instead of passing it;
- ``config``: ``spec = "..."`` under ``[tool.ci-checks]`` in ``pyproject.toml``: the table is appended to an existing
  file (or ``spec`` added to an existing table) as text, so every other line, comment and table stays as it was;
- ``workflow``: ``.github/workflows/ml-ci.yml``, which calls the kit's reusable workflows pinned to the installed
  version (the commit pip installed from, when it recorded one; else the version's tag), with minimal permissions;
- ``pre-commit``: the kit's hooks, added to an existing ``.pre-commit-config.yaml`` as one more ``repos`` entry.

Running it again changes nothing. ``--dry-run`` prints the diff and writes nothing. A whole file (the spec, the
workflow) that exists with other content is left as it is unless ``--force`` is given; merged files are never
rewritten. Every write is atomic.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ci_checks._errors import EXIT_OK, UserError

HELP = "set up ci-checks in this repository: spec template, [tool.ci-checks], CI workflow, pre-commit hooks"

PARTS = ("spec", "config", "workflow", "pre-commit")
DEFAULT_SPEC_FILE = "ci_spec.py"
SPEC_FUNCTION = "training_spec"
DEFAULT_WORKFLOW = ".github/workflows/ml-ci.yml"
PRE_COMMIT_CONFIG = ".pre-commit-config.yaml"
# The hook ids of the kit's .pre-commit-hooks.yaml (tests/commands/test_init.py keeps this list equal to it).
HOOK_IDS = (
    "ci-checks-validate-config",
    "ci-checks-large-files",
    "ci-checks-dvc-outputs",
    "ci-checks-data-files",
)
# The hooks init writes: the light ones. ci-checks-data-files installs pandas, pandera and pyarrow into its hook
# environment, so a project that declares datasets adds it itself (docs/hooks.md).
INIT_HOOK_IDS = tuple(hook for hook in HOOK_IDS if hook != "ci-checks-data-files")
SHA = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]*")
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_GITHUB_URL = re.compile(
    r"(?:git\+)?(?:https?://(?:[^@/]+@)?|ssh://git@|git@)github\.com[/:]"
    r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?(?:[@#].*)?"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="the repository to set up (default: the top folder of the git repository of the working directory, "
        "else the working directory)",
    )
    parser.add_argument(
        "--spec-file",
        default=DEFAULT_SPEC_FILE,
        metavar="FILE",
        help=f"where to write the spec template, relative to --dir (default: {DEFAULT_SPEC_FILE})",
    )
    parser.add_argument(
        "--workflow",
        default=DEFAULT_WORKFLOW,
        metavar="FILE",
        help=f"where to write the CI workflow, relative to --dir (default: {DEFAULT_WORKFLOW})",
    )
    parser.add_argument(
        "--kit-repo",
        metavar="OWNER/NAME",
        help="the GitHub repository of ci-checks that the workflow and the hooks use (default: the one pip installed "
        "ci-checks from, else the package's Source URL)",
    )
    parser.add_argument(
        "--kit-ref",
        metavar="REF",
        help="the tag or full commit SHA of ci-checks to pin (default: the commit pip installed from, else the "
        "installed version's tag, v<version>)",
    )
    parser.add_argument(
        "--default-branch",
        metavar="BRANCH",
        help="the branch pushes to which run the workflow (default: origin's HEAD, else main or master, whichever "
        "exists, else main)",
    )
    parser.add_argument(
        "--skip",
        default="",
        metavar="PARTS",
        help=f"comma-separated parts not to write: {', '.join(PARTS)} (default: none)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the changes as a diff and write nothing")
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing spec file or workflow that differs (pyproject.toml and the pre-commit "
        "configuration are only ever added to)",
    )


# ---------------------------------------------------------------- where the kit comes from


@dataclass(frozen=True)
class Pin:
    """The ci-checks the generated files use: a GitHub repository and a tag or commit of it."""

    repo: str
    ref: str
    version: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}"

    @property
    def is_sha(self) -> bool:
        return bool(SHA.fullmatch(self.ref))

    def docs(self, page: str) -> str:
        return f"{self.url}/blob/{self.ref}/docs/{page}"


def github_repo(url: str) -> str | None:
    """OWNER/NAME of a github.com URL (https, ssh or pip's git+ form), else None."""
    m = _GITHUB_URL.fullmatch(url.strip())
    return m.group("repo") if m else None


def installed_source() -> tuple[str | None, str | None]:
    """The GitHub repository and commit pip installed ci-checks from, as far as the installation records them.

    pip writes direct_url.json for an install from a URL (`pip install git+https://github.com/OWNER/NAME@v0.1.0`):
    its URL and the commit it resolved. A package-index install has none; the package's Project-URL is then used.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("ci-checks")
    except metadata.PackageNotFoundError:
        return None, None
    repo = sha = None
    text = dist.read_text("direct_url.json")
    if text:
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            repo = github_repo(str(data.get("url", "")))
            vcs = data.get("vcs_info")
            if repo and isinstance(vcs, dict) and vcs.get("vcs") == "git" and SHA.fullmatch(str(vcs.get("commit_id"))):
                sha = str(vcs["commit_id"])
    if repo is None:
        for entry in dist.metadata.get_all("Project-URL") or []:
            repo = github_repo(entry.partition(",")[2])
            if repo:
                break
    return repo, sha


def resolve_pin(kit_repo: str | None, kit_ref: str | None) -> Pin:
    """The repository and ref to pin: the options, else what the installation records, else the version's tag."""
    from ci_checks import __version__

    found_repo, found_sha = installed_source()
    repo = kit_repo or found_repo
    if not repo:
        raise UserError(
            "cannot tell which GitHub repository ci-checks was installed from (pip records it only for an install "
            "from a git URL): pass --kit-repo OWNER/NAME, e.g. the repository in your pip install line, or "
            "--skip workflow,pre-commit"
        )
    if not _REPO.fullmatch(repo):
        raise UserError(f"--kit-repo {repo!r}: expected OWNER/NAME, e.g. octo/ci-checks")
    if kit_ref:
        ref = kit_ref
    elif found_sha and (kit_repo is None or kit_repo.lower() == (found_repo or "").lower()):
        ref = found_sha
    elif "+" in __version__ or not re.fullmatch(r"\d+(\.\d+)*\S*", __version__):
        raise UserError(
            f"the installed ci-checks has no release version ({__version__}): pass --kit-ref with a tag or the full "
            "commit SHA to pin, e.g. --kit-ref v0.1.0"
        )
    else:
        ref = f"v{__version__}"
    if not _REF.fullmatch(ref) or ".." in ref:
        raise UserError(f"--kit-ref {ref!r}: expected a tag, e.g. v0.1.0, or a full 40-character commit SHA")
    return Pin(repo=repo, ref=ref, version=__version__)


# ---------------------------------------------------------------- the files


def spec_text(spec_file: str, pin: Pin | None) -> str:
    """The spec template: everything a spec needs, the user's parts as TODOs; it raises until they are filled in."""
    docs = pin.docs("train-check.md") if pin else "docs/train-check.md of ci-checks"
    return (
        '"""The training spec of this repository for ci-checks: one small batch and the\n'
        "pieces of your training.\n"
        "\n"
        "`ci-checks train-check` builds fresh objects from it and trains through your\n"
        "own step, on a CPU, in seconds, to catch training that is silently broken (a\n"
        "missing zero_grad, a frozen layer, samples mixed across the batch). Fill in\n"
        "every TODO, then run `ci-checks train-check`. Every key of the spec:\n"
        f"{docs}\n"
        '"""\n'
        "\n"
        "import torch\n"
        "\n"
        "# TODO(ci-checks): import your model and, if you have one, your training step:\n"
        "#   from mypackage.model import Net\n"
        "#   from mypackage.train import train_step\n"
        "\n"
        "\n"
        f"def {SPEC_FUNCTION}():\n"
        "    # TODO(ci-checks): a function that returns a fresh model, e.g.\n"
        "    # `lambda: Net(num_classes=10)`.\n"
        "    model_factory = None\n"
        "    # TODO(ci-checks): one small batch (inputs, targets) of real data, e.g. 8\n"
        "    # to 32 samples from your DataLoader; random tensors of the right shape\n"
        "    # work too, real data catches more.\n"
        "    batch = None\n"
        "    if model_factory is None or batch is None:\n"
        "        raise NotImplementedError(\n"
        f'            "{spec_file}: fill in the TODOs of {SPEC_FUNCTION}() "\n'
        '            "(the model and one batch), then run ci-checks train-check"\n'
        "        )\n"
        "    return {\n"
        '        "model_factory": model_factory,\n'
        '        "batch": batch,\n'
        "        # TODO(ci-checks): your loss and optimizer, as your training uses them.\n"
        '        "loss_fn": torch.nn.CrossEntropyLoss(),\n'
        '        "optimizer_factory": lambda params: torch.optim.AdamW(params, lr=1e-3),\n'
        "        # TODO(ci-checks): your own step, train_step(model, batch, loss_fn,\n"
        "        # optimizer) -> loss, so that the checks test the code that trains:\n"
        "        # bugs live there. Without it the kit's default step is used.\n"
        '        # "train_step": train_step,\n'
        "    }\n"
    )


def config_table(spec: str, pin: Pin | None) -> str:
    """The [tool.ci-checks] table init adds to pyproject.toml."""
    docs = pin.docs("configuration.md") if pin else "docs/configuration.md of ci-checks"
    return (
        "[tool.ci-checks]\n"
        "# The training spec of `ci-checks train-check`, the pytest plugin and the hooks\n"
        "# (added by `ci-checks init`). Every setting:\n"
        f"# {docs}\n"
        f'spec = "{spec}"\n'
    )


TIERS = '["lint", "pytest", "train-check", "compare", "report"]'


def workflow_text(pin: Pin, *, branch: str, spec: str | None = None) -> str:
    """The caller workflow: ml-ci.yml with read-only permissions, and report.yml to post the sticky comment."""
    comment = f" # v{pin.version}" if pin.is_sha else ""
    with_spec = f"    with:\n      spec: {spec}\n" if spec else ""
    return (
        "# ci-checks: lint, tests, the training checks, metrics against the base branch and\n"
        f"# one report per pull request. Reference: {pin.docs('workflows.md')}\n"
        "name: ML CI\n"
        "on:\n"
        "  pull_request:\n"
        "  push:\n"
        f"    branches: [{branch}]\n"
        "permissions: {}\n"
        "concurrency:\n"
        "  group: ${{ github.workflow }}-${{ github.event.pull_request.number || github.ref }}\n"
        "  cancel-in-progress: true\n"
        "jobs:\n"
        "  ml-ci:\n"
        f"    uses: {pin.repo}/.github/workflows/ml-ci.yml@{pin.ref}{comment}\n"
        "    permissions:\n"
        "      contents: read # check out the repository\n"
        f"{with_spec}"
        "  report:\n"
        "    # The report as one sticky comment on the pull request (it is also in the\n"
        "    # job summary and the ci-checks-report artifact): delete this job to keep\n"
        "    # every token of this workflow read-only.\n"
        "    needs: [ml-ci]\n"
        "    if: ${{ !cancelled() }}\n"
        f"    uses: {pin.repo}/.github/workflows/report.yml@{pin.ref}{comment}\n"
        "    permissions:\n"
        "      contents: read # check out the repository\n"
        "      pull-requests: write # create or update the one sticky comment\n"
    )


def pre_commit_entry(pin: Pin, indent: str = "  ") -> str:
    """The kit's repos entry for .pre-commit-config.yaml, its sequence dash at `indent`."""
    rev = f"{pin.ref}  # frozen: v{pin.version}" if pin.is_sha else pin.ref
    inner = indent + "  "
    return (
        f"{indent}- repo: {pin.url}\n"
        f"{inner}rev: {rev}\n"
        f"{inner}hooks:\n" + "".join(f"{inner}  - id: {hook}\n" for hook in INIT_HOOK_IDS)
    )


def pre_commit_text(pin: Pin) -> str:
    return (
        "# pre-commit hooks (https://pre-commit.com): pip install pre-commit, then\n"
        "# pre-commit install. `ci-checks init` added the ci-checks hooks.\n"
        "repos:\n" + pre_commit_entry(pin)
    )


# ---------------------------------------------------------------- merging into existing files


def _toml_loads(text: str, where: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: invalid TOML ({e}); fix it, then run ci-checks init again") from None


_TABLE_HEADER = re.compile(r'^\s*\[\s*tool\s*\.\s*(?:ci-checks|"ci-checks"|\'ci-checks\')\s*\]\s*(?:#.*)?$', re.M)


def merge_config(old: str | None, spec: str, pin: Pin | None, where: str) -> tuple[str | None, str]:
    """pyproject.toml with spec under [tool.ci-checks] (new text, or None to leave it) and what was done."""
    if old is None:
        return config_table(spec, pin), "created with [tool.ci-checks]"
    data = _toml_loads(old, where)
    tool = data.get("tool")
    table = tool.get("ci-checks") if isinstance(tool, dict) else None
    if isinstance(table, dict) and "spec" in table:
        return None, f"already names a spec ({table['spec']}); left as it is"
    header = _TABLE_HEADER.search(old)
    if header is not None:
        new = old[: header.end()] + f'\nspec = "{spec}"  # added by `ci-checks init`' + old[header.end() :]
        added = "added spec to [tool.ci-checks]"
    else:
        # No [tool.ci-checks] header: append the table (TOML allows it after its sub-tables, [tool.ci-checks.x]).
        new = old + ("" if old.endswith("\n") or not old else "\n") + ("\n" if old.strip() else "")
        new += config_table(spec, pin)
        added = "added [tool.ci-checks]"
    try:
        merged = _toml_loads(new, where)
    except UserError:  # the table was defined another way (inline, dotted keys): adding a header redefines it
        raise UserError(_by_hand(where, spec)) from None
    expected = data
    expected.setdefault("tool", {}).setdefault("ci-checks", {})["spec"] = spec
    if merged != expected:
        raise UserError(_by_hand(where, spec))
    return new, added


def _by_hand(where: str, spec: str) -> str:
    return (
        f"{where}: cannot add the spec to its [tool.ci-checks] table without rewriting it (an inline table or dotted "
        f'keys?): add spec = "{spec}" to it by hand, then run ci-checks init again'
    )


def _normalised_url(url: Any) -> str:
    text = str(url).strip().lower().removesuffix("/").removesuffix(".git")
    return re.sub(r"^(?:git@|ssh://git@)github\.com[:/]", "https://github.com/", text)


_TOP_KEY = re.compile(r"^(?P<key>[^\s#:-][^:]*?)\s*:(?:\s|$)")


def merge_pre_commit(old: str | None, pin: Pin, where: str) -> tuple[str | None, str]:
    """.pre-commit-config.yaml with the kit's entry appended to repos (new text, or None to leave it), and what."""
    import yaml

    if old is None:
        return pre_commit_text(pin), "created with the ci-checks hooks"
    try:
        data = yaml.safe_load(old)
    except yaml.YAMLError as e:
        raise UserError(f"{where}: invalid YAML ({str(e).splitlines()[0]}); fix it, then run ci-checks init again")
    if data is None:
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("repos", []), list):
        raise UserError(f"{where}: expected a mapping with a `repos:` list, as pre-commit reads it")
    repos = data.get("repos", [])
    for repo in repos:
        hooks = repo.get("hooks", []) if isinstance(repo, dict) else []
        ids = {h.get("id") for h in hooks if isinstance(h, dict)}
        if _normalised_url(repo.get("repo", "")) == _normalised_url(pin.url) or ids & set(HOOK_IDS):
            return None, "already has the ci-checks hooks; left as it is"
    lines = old.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if re.match(r"^repos\s*:\s*(?:#.*)?$", line)), None)
    if start is None:
        if "repos" in data:  # `repos: []` or another flow style: rewriting it would lose its formatting
            raise UserError(_hooks_by_hand(where, pin))
        new = "".join(lines) + "repos:\n" + pre_commit_entry(pin)
    else:
        end = start + 1
        last = start  # the last line of the repos block that holds content
        while end < len(lines):
            line = lines[end]
            if line.strip() in ("---", "...") or _TOP_KEY.match(line):
                break
            if line.strip() and not line.lstrip().startswith("#"):
                last = end
            end += 1
        item = next(
            (m for m in (re.match(r"^(\s*)-(?:\s|$)", lines[i]) for i in range(start + 1, last + 1)) if m), None
        )
        indent = item.group(1) if item else "  "
        new = "".join(lines[: last + 1]) + pre_commit_entry(pin, indent) + "".join(lines[last + 1 :])
    try:
        merged = yaml.safe_load(new)
    except yaml.YAMLError:
        raise UserError(_hooks_by_hand(where, pin)) from None
    expected = dict(data)
    expected["repos"] = [*repos, yaml.safe_load(pre_commit_entry(pin, ""))[0]]
    if merged != expected:
        raise UserError(_hooks_by_hand(where, pin))
    return new, "added the ci-checks hooks"


def _hooks_by_hand(where: str, pin: Pin) -> str:
    return (
        f"{where}: cannot add the ci-checks hooks without rewriting its `repos:` list; add this entry to it by "
        f"hand:\n{pre_commit_entry(pin, '')}"
    )


# ---------------------------------------------------------------- planning and writing


@dataclass
class Change:
    """One file init would write: its text before (None: missing) and after (None: left as it is), and why."""

    part: str
    path: str
    old: str | None
    new: str | None
    note: str

    @property
    def action(self) -> str:
        if self.new is None or self.new == self.old:
            return "skipped" if self.note.startswith("exists") else "unchanged"
        return "created" if self.old is None else "updated"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None


def _whole_file(part: str, root: str, path: str, text: str, what: str, force: bool) -> Change:
    old = _read(os.path.join(root, path))
    if old is None:
        return Change(part, path, None, text, what)
    if old == text:
        return Change(part, path, old, None, "up to date")
    if force:
        return Change(part, path, old, text, f"{what} (--force: overwrote the old one)")
    return Change(part, path, old, None, "exists with other content; left as it is (--force overwrites it)")


def _relative(root: str, path: str, option: str) -> str:
    if os.path.isabs(path) or os.path.normpath(path).startswith(".."):
        raise UserError(f"{option} {path!r}: give a path inside the repository, relative to it")
    return os.path.normpath(path).replace(os.sep, "/")


def default_branch(root: str) -> str:
    """origin's HEAD branch, else main or master (whichever exists), else main."""
    from ci_checks import _git

    try:
        out = _git.run(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], root, check=False)
        if out.returncode == 0 and out.stdout.strip().startswith("origin/"):
            return out.stdout.strip().removeprefix("origin/")
        for name in ("main", "master"):
            if _git.rev_parse(root, f"refs/heads/{name}"):
                return name
    except UserError:  # no git on PATH: the files are still worth writing
        pass
    return "main"


def find_root(directory: str | None) -> str:
    """--dir, else the top folder of the git repository here, else the working directory."""
    if directory:
        if not os.path.isdir(directory):
            raise UserError(f"--dir {directory}: no such folder")
        return os.path.abspath(directory)
    from ci_checks import _git

    try:
        found = _git.toplevel_and_prefix(os.getcwd())
    except UserError:  # no git on PATH
        found = None
    return found[0] if found else os.getcwd()


def plan(
    root: str,
    *,
    parts: Sequence[str] = PARTS,
    spec_file: str = DEFAULT_SPEC_FILE,
    workflow: str = DEFAULT_WORKFLOW,
    pin: Pin | None = None,
    branch: str = "main",
    force: bool = False,
) -> list[Change]:
    """What init would write in root, part by part; nothing is written."""
    spec_file = _relative(root, spec_file, "--spec-file")
    workflow = _relative(root, workflow, "--workflow")
    if not spec_file.endswith(".py"):
        raise UserError(f"--spec-file {spec_file!r}: the spec is a Python file, e.g. {DEFAULT_SPEC_FILE}")
    spec = f"{spec_file}:{SPEC_FUNCTION}"
    changes = []
    if "spec" in parts:
        what = "the spec template: fill in its TODOs"
        changes.append(_whole_file("spec", root, spec_file, spec_text(spec_file, pin), what, force))
    if "config" in parts:
        old = _read(os.path.join(root, "pyproject.toml"))
        new, note = merge_config(old, spec, pin, "pyproject.toml")
        changes.append(Change("config", "pyproject.toml", old, new, note))
    if "workflow" in parts:
        assert pin is not None
        text = workflow_text(pin, branch=branch, spec=None if "config" in parts else spec)
        what = f"the CI workflow, pinned to {pin.repo}@{pin.ref}"
        changes.append(_whole_file("workflow", root, workflow, text, what, force))
    if "pre-commit" in parts:
        assert pin is not None
        old = _read(os.path.join(root, PRE_COMMIT_CONFIG))
        new, note = merge_pre_commit(old, pin, PRE_COMMIT_CONFIG)
        changes.append(Change("pre-commit", PRE_COMMIT_CONFIG, old, new, note))
    return changes


def diff(change: Change) -> str:
    if change.new is None or change.new == change.old:
        return ""
    old = (change.old or "").splitlines(keepends=True)
    new = change.new.splitlines(keepends=True)
    before = f"a/{change.path}" if change.old is not None else "/dev/null"
    return "".join(difflib.unified_diff(old, new, before, f"b/{change.path}"))


def write(root: str, changes: Sequence[Change]) -> None:
    from ci_checks import _io

    for change in changes:
        if change.new is None or change.new == change.old:
            continue
        path = os.path.join(root, change.path)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _io.write_text(path, change.new)
        except OSError as e:
            raise UserError(f"{change.path}: cannot write it ({e.strerror or e})") from None


def _parts(skip: str) -> list[str]:
    skipped = [p.strip() for p in skip.split(",") if p.strip()]
    unknown = [p for p in skipped if p not in PARTS]
    if unknown:
        raise UserError(f"--skip {','.join(unknown)}: unknown part; choose from {', '.join(PARTS)}")
    return [p for p in PARTS if p not in skipped]


def run(args: argparse.Namespace) -> int:
    parts = _parts(args.skip)
    root = find_root(args.dir)
    pin = None
    if {"workflow", "pre-commit"} & set(parts) or args.kit_repo:
        pin = resolve_pin(args.kit_repo, args.kit_ref)
    branch = args.default_branch or default_branch(root)
    if not _BRANCH.fullmatch(branch):
        raise UserError(f"--default-branch {branch!r}: not a branch name")
    changes = plan(
        root,
        parts=parts,
        spec_file=args.spec_file,
        workflow=args.workflow,
        pin=pin,
        branch=branch,
        force=args.force,
    )
    if args.dry_run:
        for change in changes:
            sys.stdout.write(diff(change))
    else:
        write(root, changes)
    if getattr(args, "quiet", False):
        return EXIT_OK
    verb = {"created": "would create", "updated": "would update"} if args.dry_run else {}
    for change in changes:
        action = verb.get(change.action, change.action)
        print(f"ci-checks init: {action} {change.path}: {change.note}", file=sys.stderr)
    if not args.dry_run and any(c.action in ("created", "updated") for c in changes):
        print(_next_steps(changes, pin), file=sys.stderr)
    return EXIT_OK


def _next_steps(changes: Sequence[Change], pin: Pin | None) -> str:
    steps = []
    spec = next((c for c in changes if c.part == "spec" and c.action in ("created", "updated")), None)
    if spec:
        steps.append(f"fill in the TODOs of {spec.path}, then run `ci-checks train-check` until it passes")
    if any(c.part == "pre-commit" and c.action in ("created", "updated") for c in changes):
        steps.append("run `pre-commit install` (and `pre-commit run --all-files` once)")
    steps.append("commit, push a branch and open a pull request")
    if any(c.part == "workflow" and c.action in ("created", "updated") for c in changes):
        steps.append("once it ran, mark the `ml-ci / passed` check as required in branch protection")
    return "Next:\n" + "".join(f"  {i}. {step}\n" for i, step in enumerate(steps, 1)).rstrip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    from ci_checks.main import main as cli

    return cli(["init", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
