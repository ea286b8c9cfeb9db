"""The kit's pre-commit hooks (ci_checks/hooks/): each called through main([...]) on cases it must pass and fail,
the manifest checked against the console scripts and the docs, and the hooks run by `pre-commit try-repo` on a
temporary repository, as another project would use them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci_checks.hooks import data_files, dvc_outputs, large_files, validate_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCS = ROOT / "docs" / "hooks.md"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_repo) -> Path:
    path = git_repo.init(tmp_path / "repo").root
    monkeypatch.chdir(path)
    return path


# ---------------------------------------------------------------- ci-checks-validate-config


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        pytest.param(
            '[tool.ci-checks]\nspec = "spec.py:training_spec"\n[tool.ci-checks.memorization]\nmax-steps = 800\n',
            None,
            id="valid",
        ),
        pytest.param('[project]\nname = "x"\n', None, id="no-table"),
        pytest.param('[tool.ci-checks]\nspecc = "spec.py:f"\n', "unknown key 'specc'; did you mean 'spec'?", id="typo"),
        pytest.param(
            "[tool.ci-checks.memorization]\nmax-step = 3\n",
            "unknown setting 'memorization.max-step'",
            id="setting-typo",
        ),
        pytest.param('[tool.ci-checks]\nseed = "zero"\n', "'seed' must be an integer", id="type"),
        pytest.param("[tool.ci-checks\n", "invalid TOML", id="bad-toml"),
        pytest.param(
            '[tool.ci-checks]\nspec = "missing.py:training_spec"\n',
            "names missing.py, which does not exist",
            id="spec-file-missing",
        ),
        pytest.param('[tool.ci-checks]\nspec = "mypkg.spec:training_spec"\n', None, id="module-spec-not-checked"),
    ],
)
def test_validate_config(repo, capsys, toml, message):
    (repo / "spec.py").write_text("def training_spec(): ...\n")
    (repo / "pyproject.toml").write_text(toml)
    code = validate_config.main(["pyproject.toml", "README.md"])  # other files are ignored
    err = capsys.readouterr().err
    if message is None:
        assert (code, err) == (0, "")
    else:
        assert code == 1 and message in err and err.startswith("ci-checks-validate-config: pyproject.toml")


def test_validate_config_does_not_import_torch(repo):
    (repo / "pyproject.toml").write_text("[tool.ci-checks]\nseed = 1\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ci_checks.hooks.validate_config import main; "
            "code = main(['pyproject.toml']); print(code, 'torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["0", "False"]


# Every table, as a user would write it; the hook must accept it (tests/test_config.py holds the schema's own tests).
FULL_CONFIG = """
[tool.ci-checks]
spec = "spec.py:training_spec"
format = "github"
checks = ["memorization", "loss-decreases"]
skip = ["checkpoint"]
seed = 1

[tool.ci-checks.memorization]
max-steps = 800

[tool.ci-checks.compare]
files = ["metrics/*.json", { path = "results.csv", columns = ["f1"], rows = "last" }]
curves = [{ path = "plots/train_loss.csv", x = "epoch", y = "loss" }]
fail-on = "regressed"
fetch-depth = 0

[tool.ci-checks.metrics."*accuracy"]
direction = "higher"
abs-tol = 0.002

[tool.ci-checks.golden]
weights = "models/model.pt"
suites = { night-time = "golden/night.pt" }

[tool.ci-checks.rerun]
timeout-minutes = 120

[[tool.ci-checks.rerun.runs]]
name = "baseline"
ref = "v1.0"
stages = ["train"]
metrics = { "*loss" = { rel-tol = 0.05 } }
"""


@pytest.mark.parametrize(
    ("header", "line", "message"),
    [
        pytest.param(
            "[tool.ci-checks.rerun]",
            'command = ["dvc", "repro"]',
            "[tool.ci-checks.rerun]: 'command' must be a command line string",
            id="rerun-command-list",
        ),
        pytest.param(
            "[tool.ci-checks.rerun]",
            "workdir = 3",
            "[tool.ci-checks.rerun]: 'workdir' must be a string path, got 3",
            id="rerun-workdir-int",
        ),
        pytest.param(
            "[[tool.ci-checks.rerun.runs]]",
            "timeout-minutes = -1",
            "[tool.ci-checks.rerun.runs[0]]: timeout-minutes must be a positive number, got -1",
            id="run-timeout",
        ),
        pytest.param("[tool.ci-checks]", "sede = 1", "unknown key 'sede'; did you mean 'seed'?", id="top-level"),
        pytest.param(
            "[tool.ci-checks.memorization]",
            "max-step = 1",
            "unknown setting 'memorization.max-step'; did you mean 'max-steps'?",
            id="check",
        ),
        pytest.param(
            "[tool.ci-checks.compare]",
            "fail_on = 'any'",
            "[tool.ci-checks.compare]: unknown key 'fail_on'; did you mean 'fail-on'?",
            id="compare",
        ),
        pytest.param(
            '[tool.ci-checks.metrics."*accuracy"]',
            "rel_tol = 0.1",
            "[tool.ci-checks.metrics.\"*accuracy\"]: unknown key 'rel_tol'; did you mean 'rel-tol'?",
            id="metrics",
        ),
        pytest.param(
            "[tool.ci-checks.golden]",
            "suite = {}",
            "[tool.ci-checks.golden]: unknown key 'suite'; did you mean 'suites'?",
            id="golden",
        ),
        pytest.param(
            "[tool.ci-checks.rerun]",
            "timeout = 5",
            "[tool.ci-checks.rerun]: unknown key 'timeout'; did you mean 'timeout-minutes'?",
            id="rerun",
        ),
        pytest.param(
            "[[tool.ci-checks.rerun.runs]]",
            'stage = ["train"]',
            "[tool.ci-checks.rerun.runs[0]]: unknown key 'stage'; did you mean 'stages'?",
            id="rerun-run",
        ),
    ],
)
def test_validate_config_rejects_what_a_command_would(repo, capsys, header, line, message):
    (repo / "spec.py").write_text("def training_spec(): ...\n")
    assert f"\n{header}\n" in FULL_CONFIG
    (repo / "pyproject.toml").write_text(FULL_CONFIG.replace(f"\n{header}\n", f"\n{header}\n{line}\n", 1))
    assert validate_config.main(["pyproject.toml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ci-checks-validate-config: pyproject.toml [tool.ci-checks") and message in err, err


def test_validate_config_accepts_every_table(repo, capsys):
    (repo / "spec.py").write_text("def training_spec(): ...\n")
    (repo / "pyproject.toml").write_text(FULL_CONFIG)
    assert validate_config.main(["pyproject.toml"]) == 0
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- ci-checks-large-files


def _write(path: Path, kb: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * kb * 1024)
    return str(path.relative_to(Path.cwd()))


def test_large_files_refuses_weights_and_data_over_the_limit(repo, capsys):
    files = [
        _write(repo / "models" / "model.pt", 600),
        _write(repo / "data" / "train.csv", 501),
        _write(repo / "small.ckpt", 100),
        _write(repo / "notes.txt", 600),
        _write(repo / "data.csv.dvc", 900),
    ]
    assert large_files.main(files) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("ci-checks-large-files: models/model.pt (600 KB) is a model or data file over the 500 KB")
    assert "git rm --cached 'models/model.pt' && dvc add 'models/model.pt'" in err[0]
    assert "data/train.csv (501 KB)" in err[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--max-kb", "700"], 0, id="higher-limit"),
        pytest.param(["--allow", "models/*"], 0, id="allowed"),
        pytest.param(["--suffixes", "ckpt"], 0, id="other-suffixes"),
        pytest.param(["--max-kb-any", "100", "--suffixes", "ckpt"], 1, id="any-file-limit"),
    ],
)
def test_large_files_options(repo, args, expected):
    files = [_write(repo / "models" / "model.pt", 600)]
    assert large_files.main([*args, *files]) == expected


def test_large_files_rejects_a_bad_limit(repo, capsys):
    with pytest.raises(SystemExit) as exc:
        large_files.main(["--max-kb", "0", "x"])
    assert exc.value.code == 2 and "must be positive" in capsys.readouterr().err


# ---------------------------------------------------------------- ci-checks-dvc-outputs

DVC_YAML = """\
stages:
  train:
    cmd: python train.py
    wdir: src
    outs:
      - ../models/model.pt
      - ../cache_dir
    metrics:
      - ../metrics.json:
          cache: false
    plots:
      - ../plots/${item}.csv
  sweep:
    foreach: [a, b]
    do:
      cmd: echo ${item}
      outs:
        - out_fixed.bin
"""


@pytest.fixture
def dvc_repo(repo: Path, git_repo) -> Path:
    (repo / "project").mkdir()
    (repo / "project" / "dvc.yaml").write_text(DVC_YAML)
    (repo / "project" / "metrics.json").write_text("{}")
    (repo / "project" / "data.csv.dvc").write_text("outs:\n- md5: 0\n  path: data.csv\n")
    git_repo(repo).git("add", "-A")
    return repo


def test_dvc_outputs_clean_when_only_uncached_outputs_are_committed(dvc_repo, capsys):
    assert dvc_outputs.main([]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("path", "declared"),
    [
        pytest.param(
            "project/models/model.pt",
            "output 'project/models/model.pt' of stage 'train' in project/dvc.yaml",
            id="stage-out-with-wdir",
        ),
        pytest.param("project/cache_dir/part-0", "output 'project/cache_dir' of stage 'train'", id="inside-dir-output"),
        pytest.param("project/data.csv", "output 'project/data.csv' of project/data.csv.dvc", id="dvc-add-file"),
        pytest.param("project/out_fixed.bin", "output 'project/out_fixed.bin' of stage 'sweep'", id="foreach-stage"),
    ],
)
def test_dvc_outputs_refuses_committed_outputs(dvc_repo, git_repo, capsys, path, declared):
    target = dvc_repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("weights")
    git_repo(dvc_repo).git("add", "-f", path)  # staged is enough: the index is what gets committed
    assert dvc_outputs.main([]) == 1
    err = capsys.readouterr().err
    assert f"ci-checks-dvc-outputs: {path} is committed to git but DVC caches it ({declared}" in err
    assert f"git rm -r --cached '{path}'" in err


def test_dvc_outputs_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert dvc_outputs.main([]) == 2
    assert "run the hook inside a git repository" in capsys.readouterr().err


def test_dvc_outputs_invalid_yaml(repo, git_repo, capsys):
    (repo / "dvc.yaml").write_text("stages: [\n")
    git_repo(repo).git("add", "-A")
    assert dvc_outputs.main([]) == 2
    assert "dvc.yaml: invalid YAML" in capsys.readouterr().err


# ---------------------------------------------------------------- on the example project


def test_every_hook_passes_on_this_repository_and_its_example(monkeypatch, git_repo):
    monkeypatch.chdir(ROOT)
    examples = [
        p
        for p in git_repo(ROOT).git("ls-files", "-co", "--exclude-standard", "examples").splitlines()
        if os.path.exists(p)
    ]
    assert examples
    assert validate_config.main(["pyproject.toml"]) == 0
    assert large_files.main(examples) == 0
    assert dvc_outputs.main([]) == 0
    assert data_files.main(examples) == 0


# ---------------------------------------------------------------- the manifest


def test_manifest_is_valid():
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", ".pre-commit-hooks.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_project_config_is_valid_and_pins_match_the_lint_extra():
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lint = set(PYPROJECT["project"]["optional-dependencies"]["lint"])
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert all(r["repo"] == "local" for r in config["repos"]), "every hook installs from PyPI; nothing is cloned"
    pins = {d for r in config["repos"] for h in r["hooks"] for d in h.get("additional_dependencies", []) if "==" in d}
    assert pins - {"pre-commit-hooks==6.0.0"} <= lint


@pytest.mark.parametrize("hook", MANIFEST, ids=lambda h: h["id"])
def test_each_hook_id_is_its_console_script(hook):
    scripts = PYPROJECT["project"]["scripts"]
    assert hook["entry"] == hook["id"] and hook["id"] in scripts
    module, _, func = scripts[hook["id"]].partition(":")
    assert module == f"ci_checks.hooks.{hook['id'].removeprefix('ci-checks-').replace('-', '_')}" and func == "main"
    assert hook["language"] == "python"


@pytest.mark.parametrize("hook", MANIFEST, ids=lambda h: h["id"])
def test_each_hook_id_is_documented(hook):
    assert f"`{hook['id']}`" in DOCS.read_text()


# ---------------------------------------------------------------- pre-commit try-repo, as a user would run it


@pytest.fixture(scope="module")
def kit_clone(tmp_path_factory, git_repo) -> tuple[Path, str]:
    """This working tree committed into a throwaway repository (try-repo installs a commit)."""
    clone = tmp_path_factory.mktemp("kit")
    files = git_repo(ROOT).git("ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in files:
        if name and (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    return clone, git_repo.init(clone).commit(message="kit")


def test_try_repo_runs_the_kit_hooks_on_a_user_repository(kit_clone, tmp_path, git_repo):
    clone, rev = kit_clone
    repo = git_repo.init(tmp_path / "user")
    user = repo.root
    (user / "pyproject.toml").write_text("[tool.ci-checks]\nsede = 0\n")
    (user / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n    outs:\n      - model.pt\n")
    (user / "model.pt").write_bytes(b"\0" * 600 * 1024)
    repo.git("add", "-A")
    env = {**os.environ, **repo.ENV, "PRE_COMMIT_HOME": str(tmp_path.parent / "pre-commit-home"), "NO_COLOR": "1"}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pre_commit",
                "try-repo",
                str(clone),
                "--ref",
                rev,
                "--all-files",
                "--color",
                "never",
            ],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    bad = try_repo()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    out = bad.stdout
    assert re.search(r"validate \[tool\.ci-checks\]\.+Failed", out)
    assert "unknown key 'sede'; did you mean 'seed'?" in out
    assert re.search(r"refuse large model and data files \(use DVC\)\.+Failed", out)
    assert re.search(r"keep DVC-tracked outputs out of git\.+Failed", out)
    assert "model.pt is committed to git but DVC caches it" in out
    (user / "pyproject.toml").write_text("[tool.ci-checks]\nseed = 0\n")
    repo.git("rm", "-q", "--cached", "model.pt")
    (user / ".gitignore").write_text("/model.pt\n")
    repo.git("add", "-A")
    good = try_repo()  # same commit: pre-commit reuses the environment it installed above
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("Passed") == 3


def test_the_readme_snippet_lists_every_hook():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n# \.pre-commit-config\.yaml\n(.*?)```", readme, re.S)
    assert block, "README.md's pre-commit snippet"
    ids = [hook["id"] for repo in yaml.safe_load(block.group(1))["repos"] for hook in repo["hooks"]]
    assert ids == [hook["id"] for hook in MANIFEST]
