"""ci-checks init: the four files on an empty repository and merged into existing ones, idempotent, --dry-run,
--force, the pin taken from the installation, and the spec template that fails until its TODOs are filled in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_checks import __version__
from ci_checks.commands import init
from ci_checks.main import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
KIT = ["--kit-repo", "octo/ci-checks"]
FILES = ["ci_spec.py", "pyproject.toml", ".github/workflows/ml-ci.yml", ".pre-commit-config.yaml"]


@pytest.fixture
def repo(tmp_path: Path, git_repo: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty git repository on main, as the working directory."""
    r = git_repo.init(tmp_path / "user")
    monkeypatch.chdir(r.root)
    return r


def run_init(*args: str) -> int:
    return main(["init", *args])


def snapshot(root: Path) -> dict[str, str]:
    return {name: (root / name).read_text() for name in FILES if (root / name).exists()}


# ---------------------------------------------------------------- an empty repository


def test_init_writes_the_four_files_in_an_empty_repository(repo, capsys):
    assert run_init(*KIT) == 0
    root = repo.root
    err = capsys.readouterr().err
    for name in FILES:
        assert f"ci-checks init: created {name}" in err, err
    assert "fill in the TODOs of ci_spec.py" in err and "ml-ci / passed" in err
    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert config == {"tool": {"ci-checks": {"spec": "ci_spec.py:training_spec"}}}
    workflow = yaml.safe_load((root / ".github/workflows/ml-ci.yml").read_text())
    assert workflow["permissions"] == {}
    assert workflow[True] == {"pull_request": None, "push": {"branches": ["main"]}}
    assert workflow["jobs"]["ml-ci"] == {
        "uses": f"octo/ci-checks/.github/workflows/ml-ci.yml@v{__version__}",
        "permissions": {"contents": "read"},
    }
    assert workflow["jobs"]["report"]["uses"] == f"octo/ci-checks/.github/workflows/report.yml@v{__version__}"
    assert workflow["jobs"]["report"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    hooks = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    assert hooks == {
        "repos": [
            {
                "repo": "https://github.com/octo/ci-checks",
                "rev": f"v{__version__}",
                "hooks": [{"id": hook} for hook in init.INIT_HOOK_IDS],
            }
        ]
    }


def test_init_is_idempotent(repo, capsys):
    assert run_init(*KIT) == 0
    before = snapshot(repo.root)
    capsys.readouterr()
    assert run_init(*KIT) == 0
    assert snapshot(repo.root) == before
    err = capsys.readouterr().err
    assert err.count("ci-checks init: unchanged") == 4 and "Next:" not in err, err


def test_dry_run_prints_the_diff_and_writes_nothing(repo, capsys):
    (repo.root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    assert run_init(*KIT, "--dry-run") == 0
    out, err = capsys.readouterr()
    assert snapshot(repo.root) == {"pyproject.toml": '[project]\nname = "demo"\n'}
    assert "--- /dev/null\n+++ b/ci_spec.py\n" in out
    assert '--- a/pyproject.toml\n+++ b/pyproject.toml\n@@ -1,2 +1,8 @@\n [project]\n name = "demo"\n+\n' in out
    assert '+spec = "ci_spec.py:training_spec"\n' in out
    assert "would create .github/workflows/ml-ci.yml" in err and "would update pyproject.toml" in err


# ---------------------------------------------------------------- pyproject.toml


PYPROJECT = """\
# The project's own comment stays.
[project]
name = "demo"   # inline comments too
dependencies = ["torch"]

[tool.black]
line-length = 100
"""


@pytest.mark.parametrize(
    ("old", "expected_tail", "note"),
    [
        pytest.param(PYPROJECT, "\n[tool.ci-checks]\n# The training spec", "added [tool.ci-checks]", id="no-table"),
        pytest.param(
            PYPROJECT + "\n[tool.ci-checks]  # ours\nseed = 3\n",
            '[tool.ci-checks]  # ours\nspec = "ci_spec.py:training_spec"  # added by `ci-checks init`\nseed = 3\n',
            "added spec to [tool.ci-checks]",
            id="table-without-spec",
        ),
        pytest.param(
            PYPROJECT + "\n[tool.ci-checks.memorization]\nmax-steps = 800\n",
            "[tool.ci-checks.memorization]\nmax-steps = 800\n\n[tool.ci-checks]\n",
            "added [tool.ci-checks]",
            id="only-a-sub-table",
        ),
    ],
)
def test_config_is_merged_never_clobbered(repo, capsys, old, expected_tail, note):
    (repo.root / "pyproject.toml").write_text(old)
    assert run_init(*KIT, "--skip", "spec,workflow,pre-commit") == 0
    new = (repo.root / "pyproject.toml").read_text()
    assert expected_tail in new
    assert f"updated pyproject.toml: {note}" in capsys.readouterr().err
    before, after = tomllib.loads(old), tomllib.loads(new)
    before.setdefault("tool", {}).setdefault("ci-checks", {})["spec"] = "ci_spec.py:training_spec"
    assert after == before
    for line in old.splitlines():
        assert line in new, "every line of the old file is still there"


def test_config_with_a_spec_is_left_alone(repo, capsys):
    text = PYPROJECT + '\n[tool.ci-checks]\nspec = "src/spec.py:make"\n'
    (repo.root / "pyproject.toml").write_text(text)
    assert run_init(*KIT, "--skip", "spec,workflow,pre-commit") == 0
    assert (repo.root / "pyproject.toml").read_text() == text
    assert "already names a spec (src/spec.py:make)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[project\n", "pyproject.toml: invalid TOML", id="invalid"),
        pytest.param(
            "[tool]\nci-checks = { seed = 1 }\n", 'add spec = "ci_spec.py:training_spec" to it by hand', id="inline"
        ),
    ],
)
def test_config_that_cannot_be_merged_is_bad_input(repo, capsys, text, message):
    (repo.root / "pyproject.toml").write_text(text)
    assert run_init(*KIT) == 2
    assert message in capsys.readouterr().err
    assert snapshot(repo.root) == {"pyproject.toml": text}, "nothing is written when one part cannot be"


# ---------------------------------------------------------------- .pre-commit-config.yaml


HOOKS_INDENTED = """\
# our hooks
default_language_version:
  python: python3.11
repos:
  - repo: https://github.com/psf/black
    rev: 24.1.0
    hooks:
      - id: black
  # a comment between entries
  - repo: local
    hooks:
      - id: pylint
        name: pylint
        entry: pylint
        language: system

# a comment before the next key
ci:
  autofix_prs: false
"""
HOOKS_FLUSH = "repos:\n- repo: https://github.com/psf/black\n  rev: 24.1.0\n  hooks:\n  - id: black\nfail_fast: true"


@pytest.mark.parametrize("old", [HOOKS_INDENTED, HOOKS_FLUSH], ids=["indented", "flush-no-final-newline"])
def test_pre_commit_entry_is_added_to_an_existing_config(repo, capsys, old):
    (repo.root / ".pre-commit-config.yaml").write_text(old)
    assert run_init(*KIT, "--skip", "spec,config,workflow") == 0
    new = (repo.root / ".pre-commit-config.yaml").read_text()
    before, after = yaml.safe_load(old), yaml.safe_load(new)
    assert after["repos"][:-1] == before["repos"]
    assert after["repos"][-1]["repo"] == "https://github.com/octo/ci-checks"
    assert {k: v for k, v in after.items() if k != "repos"} == {k: v for k, v in before.items() if k != "repos"}
    for line in old.splitlines():
        assert line in new
    assert "updated .pre-commit-config.yaml: added the ci-checks hooks" in capsys.readouterr().err
    assert run_init(*KIT, "--skip", "spec,config,workflow") == 0
    assert (repo.root / ".pre-commit-config.yaml").read_text() == new, "idempotent"


def test_pre_commit_config_that_has_the_hooks_is_left_alone(repo, capsys):
    text = "repos:\n  - repo: https://github.com/Octo/ci-checks.git\n    rev: v0.0.9\n    hooks:\n      - id: x\n"
    (repo.root / ".pre-commit-config.yaml").write_text(text)
    assert run_init(*KIT, "--skip", "spec,config,workflow") == 0
    assert (repo.root / ".pre-commit-config.yaml").read_text() == text
    assert "already has the ci-checks hooks" in capsys.readouterr().err


def test_pre_commit_config_in_flow_style_is_left_for_a_hand_edit(repo, capsys):
    (repo.root / ".pre-commit-config.yaml").write_text("repos: []\n")
    assert run_init(*KIT, "--skip", "spec,config,workflow") == 2
    err = capsys.readouterr().err
    assert "add this entry to it by hand" in err and "- repo: https://github.com/octo/ci-checks" in err


def test_the_written_pre_commit_config_is_valid(repo):
    pytest.importorskip("pre_commit")
    (repo.root / ".pre-commit-config.yaml").write_text(HOOKS_INDENTED)
    assert run_init(*KIT, "--skip", "spec,config,workflow") == 0
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=repo.root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hook_ids_are_the_manifests():
    manifest = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert init.HOOK_IDS == tuple(hook["id"] for hook in manifest)


# ---------------------------------------------------------------- whole files and --force


def test_an_existing_spec_or_workflow_is_kept_unless_forced(repo, capsys):
    (repo.root / "ci_spec.py").write_text("def training_spec():\n    return {}\n")
    (repo.root / ".github" / "workflows").mkdir(parents=True)
    (repo.root / ".github/workflows/ml-ci.yml").write_text("name: mine\n")
    assert run_init(*KIT) == 0
    assert (repo.root / "ci_spec.py").read_text() == "def training_spec():\n    return {}\n"
    assert (repo.root / ".github/workflows/ml-ci.yml").read_text() == "name: mine\n"
    err = capsys.readouterr().err
    assert "skipped ci_spec.py: exists with other content; left as it is (--force overwrites it)" in err
    assert "skipped .github/workflows/ml-ci.yml" in err
    assert run_init(*KIT, "--force") == 0
    assert "TODO(ci-checks)" in (repo.root / "ci_spec.py").read_text()
    assert "octo/ci-checks/.github/workflows/ml-ci.yml" in (repo.root / ".github/workflows/ml-ci.yml").read_text()


def test_options_and_paths(repo, capsys):
    assert run_init(*KIT, "--spec-file", "ci/spec.py", "--workflow", ".github/workflows/ci.yml") == 0
    assert (repo.root / "ci" / "spec.py").is_file() and (repo.root / ".github/workflows/ci.yml").is_file()
    assert tomllib.loads((repo.root / "pyproject.toml").read_text())["tool"]["ci-checks"]["spec"] == (
        "ci/spec.py:training_spec"
    )
    assert "ci/spec.py: fill in the TODOs" in (repo.root / "ci" / "spec.py").read_text()


def test_the_workflow_names_the_spec_when_the_config_is_skipped(repo):
    assert run_init(*KIT, "--skip", "config") == 0
    workflow = yaml.safe_load((repo.root / ".github/workflows/ml-ci.yml").read_text())
    assert workflow["jobs"]["ml-ci"]["with"] == {"spec": "ci_spec.py:training_spec"}
    assert not (repo.root / "pyproject.toml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--skip", "docs"], "--skip docs: unknown part", id="skip"),
        pytest.param(["--spec-file", "../spec.py"], "give a path inside the repository", id="outside"),
        pytest.param(["--spec-file", "spec.txt"], "the spec is a Python file", id="not-python"),
        pytest.param(["--kit-repo", "not a repo"], "expected OWNER/NAME", id="repo"),
        pytest.param(["--kit-ref", "v1 && rm"], "expected a tag", id="ref"),
        pytest.param(["--dir", "missing"], "--dir missing: no such folder", id="dir"),
        pytest.param(["--default-branch=-x"], "not a branch name", id="branch"),
    ],
)
def test_bad_options_exit_2(repo, capsys, args, message):
    assert run_init(*KIT, *args) == 2
    assert message in capsys.readouterr().err
    assert snapshot(repo.root) == {}


def test_default_branch_from_origin_or_the_branches(repo, git_repo, tmp_path):
    repo.commit({"a.txt": "a"}, "first")
    repo.git("branch", "-m", "master")
    assert init.default_branch(str(repo.root)) == "master"
    clone = tmp_path / "clone"
    repo.run("git", "clone", "-q", str(repo.root), str(clone))
    git_repo(clone).git("checkout", "-q", "-b", "feature")
    assert init.default_branch(str(clone)) == "master", "origin's HEAD, not the branch checked out"
    assert init.default_branch(str(tmp_path)) == "main"


# ---------------------------------------------------------------- the pin


class _FakeDist:
    def __init__(self, direct_url: dict[str, Any] | None, urls: list[str]) -> None:
        self.direct_url = direct_url
        self.metadata = _Meta(urls)

    def read_text(self, name: str) -> str | None:
        return json.dumps(self.direct_url) if name == "direct_url.json" and self.direct_url else None


class _Meta:
    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    def get_all(self, key: str) -> list[str] | None:
        return self.urls if key == "Project-URL" else None


SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("direct_url", "urls", "repo", "ref"),
    [
        pytest.param(
            {"url": "https://github.com/Acme/ci-checks.git", "vcs_info": {"vcs": "git", "commit_id": SHA}},
            [],
            "Acme/ci-checks",
            SHA,
            id="pip-from-git",
        ),
        pytest.param(
            {"url": "git@github.com:Acme/ci-checks", "vcs_info": {"vcs": "git", "commit_id": SHA}},
            [],
            "Acme/ci-checks",
            SHA,
            id="ssh-url",
        ),
        pytest.param(None, ["Source, https://github.com/Acme/ci-checks"], "Acme/ci-checks", None, id="project-url"),
        pytest.param({"url": "file:///src/ci-checks", "dir_info": {"editable": True}}, [], None, None, id="local"),
    ],
)
def test_pin_comes_from_the_installation(monkeypatch, direct_url, urls, repo, ref):
    from importlib import metadata

    monkeypatch.setattr(metadata, "distribution", lambda name: _FakeDist(direct_url, urls))
    assert init.installed_source() == (repo, ref)
    if repo is None:
        with pytest.raises(init.UserError, match="pass --kit-repo OWNER/NAME"):
            init.resolve_pin(None, None)
        return
    pin = init.resolve_pin(None, None)
    assert (pin.repo, pin.ref) == (repo, ref or f"v{__version__}")
    assert init.resolve_pin(None, "v9.9.9").ref == "v9.9.9", "--kit-ref wins"
    assert init.resolve_pin("Other/ci-checks", None).ref == f"v{__version__}", "a commit of another repository is not"


def test_a_sha_pin_carries_the_version_in_a_comment(repo, monkeypatch):
    from importlib import metadata

    direct = {"url": "https://github.com/acme/ci-checks", "vcs_info": {"vcs": "git", "commit_id": SHA}}
    monkeypatch.setattr(metadata, "distribution", lambda name: _FakeDist(direct, []))
    assert run_init() == 0
    workflow = (repo.root / ".github/workflows/ml-ci.yml").read_text()
    assert f"uses: acme/ci-checks/.github/workflows/ml-ci.yml@{SHA} # v{__version__}\n" in workflow
    assert f"rev: {SHA}  # frozen: v{__version__}\n" in (repo.root / ".pre-commit-config.yaml").read_text()


def test_without_a_known_repository_only_the_local_parts_need_no_pin(repo, monkeypatch, capsys):
    from importlib import metadata

    monkeypatch.setattr(metadata, "distribution", lambda name: _FakeDist(None, []))
    assert run_init() == 2
    assert "pass --kit-repo OWNER/NAME" in capsys.readouterr().err
    assert run_init("--skip", "workflow,pre-commit") == 0
    assert sorted(snapshot(repo.root)) == ["ci_spec.py", "pyproject.toml"]


# ---------------------------------------------------------------- the spec template


FILLED = {
    "    model_factory = None\n": "    model_factory = lambda: torch.nn.Sequential(\n"
    "        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)\n    )\n",
    "    batch = None\n": "    batch = (torch.randn(16, 4), torch.randint(0, 3, (16,)))\n",
}


def test_the_template_fails_train_check_until_its_todos_are_filled_in(repo, capsys):
    assert run_init(*KIT, "--skip", "workflow,pre-commit") == 0
    capsys.readouterr()
    checks = ["--checks", "parameter-updates,loss-at-init,loss-decreases", "--format", "text"]
    assert main(["train-check", *checks]) == 2, "an unfilled template is an unusable spec: bad input, a red step"
    err = capsys.readouterr().err
    assert "the spec function raised NotImplementedError: ci_spec.py: fill in the TODOs of training_spec()" in err
    spec = repo.root / "ci_spec.py"
    text = spec.read_text()
    for old, new in FILLED.items():
        text = text.replace(old, new)
    spec.write_text(text)
    assert main(["train-check", *checks]) == 0, capsys.readouterr()


@pytest.mark.parametrize("tool", ["black", "flake8"])
def test_the_template_passes_black_and_flake8_at_their_defaults(tmp_path, tool):
    """The template lands in the user's repository: their linters, at default settings, must not fail on it."""
    exe = shutil.which(tool, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"{tool} is in the lint extra: pip install -e '.[lint]'")
    path = tmp_path / "ci_spec.py"
    path.write_text(init.spec_text("ci_spec.py", init.Pin("octo/ci-checks", "v0.1.0", "0.1.0")))
    args = ["--check", "--quiet"] if tool == "black" else []
    done = subprocess.run([exe, *args, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
