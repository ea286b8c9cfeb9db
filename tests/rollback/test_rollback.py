"""ci-checks rollback on the example project: a repository with tagged releases, their artifacts in git or DVC."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ci_checks.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_MODULES = ("model", "prepare", "train")
MODEL_MD5 = "ab5d411530bdfaf54d96790ed41091a6"  # examples/models/model.pt, as examples/dvc.lock records it
PYPROJECT = """\
[tool.ci-checks]
spec = "ci_spec.py:training_spec"

[tool.ci-checks.golden]
weights = "models/model.pt"
suites = { spirals = "golden/spirals.pt" }
"""


@pytest.fixture(scope="session")
def example_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's trained weights: examples/models/model.pt where `dvc repro` made it, else (a fresh clone: DVC
    outputs are not in git) trained here as its pipeline does, prepare then train, in a copy of the example; the
    training is seeded, so the file is the one examples/dvc.lock records (MODEL_MD5)."""
    import subprocess

    made = EXAMPLES / "models" / "model.pt"
    if made.exists():
        return made
    work = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLES / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "params.yaml", work / "params.yaml")
    for script in ("src/prepare.py", "src/train.py"):
        subprocess.run([sys.executable, script], cwd=work, check=True, capture_output=True)
    return work / "models" / "model.pt"


@pytest.fixture
def release(
    tmp_path: Path, git_repo: Any, compare_env: None, monkeypatch: pytest.MonkeyPatch, example_model: Path
) -> Any:
    """The example project with its trained model committed to git and golden outputs recorded, tagged v1.0.0,
    plus a later commit (today's code); the project folder is the working directory."""
    import torch

    repo = git_repo.init(tmp_path / "repo")
    root = repo.path
    shutil.copytree(EXAMPLES / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "ci_spec.py", root)
    (root / "models").mkdir()
    shutil.copy(example_model, root / "models" / "model.pt")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "golden").mkdir()
    gen = torch.Generator().manual_seed(5)
    torch.save(torch.randn(40, 2, generator=gen), root / "golden" / "spirals.pt")
    monkeypatch.chdir(root)
    forget_modules(root)
    assert main(["golden", "--update"]) == 0  # the release records what its model outputs
    forget_modules(root)  # a test then edits today's code: the next run imports it afresh, as a new process would
    repo.commit(message="release 1.0.0")
    repo.git("tag", "v1.0.0")
    repo.commit({"README.md": "today\n"}, message="after the release")
    return repo


def forget_modules(root: Path) -> None:
    """Forget the project's modules, which the spec loader keeps per spec folder for the next load in this process."""
    import sys

    from ci_checks import spec

    for folder in list(spec._IMPORTS.modules):
        if folder.startswith(str(root)):
            del spec._IMPORTS.modules[folder]
    for name, module in list(sys.modules.items()):
        # the example's src/ modules are imported by bare name: another test may have imported examples/' own
        if name in EXAMPLE_MODULES or str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]


def drill(*args: str, out: str = "rollback.json") -> tuple[int, dict[str, Any]]:
    rc = main(["rollback", "--quiet", "--format", "json", "--output", out, *args])
    return rc, json.loads(Path(out).read_text()) if os.path.exists(out) else {}


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in doc["checks"]}


def messages(doc: dict[str, Any]) -> str:
    return "\n".join(f["message"] for c in doc["checks"] for f in c["findings"])


def test_a_healthy_release_rolls_back(release: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = drill()  # --to defaults to the latest release tag before HEAD
    assert rc == 0, messages(doc)
    assert doc["subject"]["to"] == "v1.0.0"
    assert statuses(doc) == {
        "rollback-artifact": "pass",
        "rollback-load": "pass",
        "rollback-serve": "pass",
        "rollback-golden spirals": "pass",
    }
    serve = next(c for c in doc["checks"] if c["check"] == "rollback-serve")
    # the switch is timed and reported, never judged
    assert set(serve["figures"]) >= {"switch_seconds", "fetch_s", "load_s", "first_inference_s"}
    assert serve["figures"]["max_abs_diff_vs_pytorch"] < 1e-4
    golden = next(c for c in doc["checks"] if c["check"] == "rollback-golden spirals")
    assert golden["figures"]["changed_predictions"] == 0 and golden["figures"]["predictions"] == 40


def test_a_renamed_layer_in_todays_model_fails_the_load(release: Any) -> None:
    model = release.path / "src" / "model.py"
    model.write_text(model.read_text().replace("self.head", "self.classifier"))
    rc, doc = drill("--to", "v1.0.0")
    assert rc == 1
    assert statuses(doc)["rollback-load"] == "fail"
    assert statuses(doc)["rollback-serve"] == "skip"
    text = messages(doc)
    assert "classifier.weight" in text and "head.weight" in text and "no longer fit today's model class" in text


def test_a_changed_serving_path_fails_the_golden_suite(release: Any) -> None:
    """Today's forward scales its input (a preprocessing change): the release's weights load, but compute else."""
    model = release.path / "src" / "model.py"
    model.write_text(model.read_text().replace("self.body(x)", "self.body(x * 1.5)"))
    # the change also loosens today's tolerances: the release is judged by the ones it recorded with
    with open(release.path / "pyproject.toml", "a") as fh:
        fh.write("atol = 100.0\nrtol = 100.0\n\n[tool.ci-checks.rollback]\natol = 100.0\n")
    rc, doc = drill("--to", "v1.0.0")
    assert rc == 1
    assert doc["subject"]["atol"] == 1e-4 and doc["subject"]["rtol"] == 1e-3
    assert statuses(doc)["rollback-load"] == "pass"
    assert statuses(doc)["rollback-golden spirals"] == "fail"
    assert "drifts from the outputs it recorded" in messages(doc)


def test_a_release_without_its_artifact_fails(release: Any) -> None:
    release.commit({"models/model.pt": None}, message="untrack the weights")
    release.git("tag", "v1.1.0")
    release.commit({"README.md": "later\n"})
    rc, doc = drill()
    assert rc == 1
    assert doc["subject"]["to"] == "v1.1.0"
    assert statuses(doc) == {"rollback-artifact": "fail", "rollback-load": "skip", "rollback-serve": "skip"}
    assert "neither committed to git nor a DVC output" in messages(doc)
    rc, doc = drill("--build", f"{sys.executable} -c 'raise SystemExit(3)'")  # a rebuild that fails is a finding
    assert rc == 1 and "failed (exit code 3)" in messages(doc)
    assert main(["rollback", "--quiet", "--build", "no-such-command-7f3a"]) == 2
    assert release.git("worktree", "list").count("\n") == 1


def test_a_dvc_tracked_artifact_is_fetched_and_a_lost_one_fails(
    tmp_path: Path, git_repo: Any, compare_env: None, monkeypatch: pytest.MonkeyPatch, example_model: Path
) -> None:
    """The example as shipped: a DVC project in a subfolder, the model a dvc.lock output kept in the DVC cache."""
    repo = git_repo.init(tmp_path / "mono")
    project = repo.path / "examples"
    for name in ("src", "ci_spec.py", "dvc.yaml", "dvc.lock", "params.yaml", ".dvc", ".dvcignore"):
        source = EXAMPLES / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp"))
        else:
            project.mkdir(exist_ok=True)
            shutil.copy(source, project / name)
    (project / "pyproject.toml").write_text(
        '[tool.ci-checks]\nspec = "ci_spec.py:training_spec"\n\n'
        '[tool.ci-checks.rollback]\nartifact = "models/model.pt"\n'
    )
    cached = project / ".dvc" / "cache" / "files" / "md5" / MODEL_MD5[:2] / MODEL_MD5[2:]
    cached.parent.mkdir(parents=True)
    shutil.copy(example_model, cached)
    repo.commit(message="release")
    repo.git("tag", "v2.0.0")
    monkeypatch.chdir(project)
    forget_modules(project)
    rc, doc = drill("--to", "v2.0.0")
    assert rc == 0, messages(doc)
    artifact = next(c for c in doc["checks"] if c["check"] == "rollback-artifact")
    assert artifact["figures"]["source"] == "dvc"
    cached.unlink()  # the release's data was never pushed, and the cache was cleaned
    rc, doc = drill("--to", "v2.0.0")
    assert rc == 1
    assert "DVC output at v2.0.0 but DVC cannot fetch its data" in messages(doc)


@pytest.mark.parametrize(
    "args, expected",
    [
        pytest.param(["--to", "v9.9.9"], "no such commit", id="unknown-ref"),
        pytest.param(["--to", "v1.0.0", "--atol", "-1"], "--atol must be", id="negative-atol"),
        pytest.param(
            ["--to", "v1.0.0", "--artifact", "../../elsewhere.pt"], "outside the git repository", id="outside"
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    release: Any, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main(["rollback", "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_no_earlier_release_is_bad_input(
    tmp_path: Path,
    git_repo: Any,
    compare_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = git_repo.init(tmp_path / "fresh")
    repo.commit({"pyproject.toml": PYPROJECT}, message="first")
    repo.git("tag", "v0.1.0")  # the release being made: HEAD's own tag is not an earlier release
    monkeypatch.chdir(repo.path)
    assert main(["rollback", "--quiet", "--spec", str(EXAMPLES / "ci_spec.py") + ":training_spec"]) == 2
    assert "no earlier release tag" in capsys.readouterr().err


BUILD = """\
import os
import sys

import torch

sys.path.insert(0, "src")
from model import SpiralNet  # noqa: E402

torch.manual_seed(0)
os.makedirs("models", exist_ok=True)
torch.save({"model": SpiralNet().state_dict()}, "models/model.pt")
"""


def test_an_artifact_kept_nowhere_is_rebuilt_in_a_worktree_with_build(release: Any) -> None:
    """A release whose weights were never stored: --build reruns its own code at the tag, and the drill says so."""
    root = release.path
    (root / "build.py").write_text(BUILD)
    release.run(sys.executable, "build.py")  # the weights this release serves, recorded but not committed
    assert main(["golden", "--update"]) == 0
    forget_modules(root)
    (root / ".gitignore").write_text("/models/\n")
    release.git("rm", "-q", "--cached", "models/model.pt")
    release.commit(message="release 1.1.0, weights not stored")
    release.git("tag", "v1.1.0")
    release.commit({"README.md": "after 1.1.0\n"})
    rc, doc = drill("--to", "v1.1.0")
    assert rc == 1 and "neither committed to git nor a DVC output" in messages(doc)
    rc, doc = drill("--to", "v1.1.0", "--build", f"{sys.executable} build.py")
    assert rc == 0, messages(doc)
    artifact = next(c for c in doc["checks"] if c["check"] == "rollback-artifact")
    assert artifact["figures"]["source"] == "build" and "it was rebuilt with" in messages(doc)
    assert statuses(doc)["rollback-golden spirals"] == "pass"
    assert release.git("worktree", "list").count("\n") == 1  # the worktree is gone again


def test_recordings_not_made_with_the_artifact_do_not_judge_it(release: Any) -> None:
    pyproject = release.path / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace('weights = "models/model.pt"\n', ""))
    assert main(["golden", "--update"]) == 0  # recorded with the freshly built, untrained model
    release.commit(message="release 1.2.0")
    release.git("tag", "v1.2.0")
    rc, doc = drill("--to", "v1.2.0", "--artifact", "models/model.pt")
    assert rc == 0
    assert statuses(doc)["rollback-golden spirals"] == "skip"
    assert "recordings were not made with its artifact" in messages(doc)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_onnx_artifact_is_served_directly_and_fails_when_todays_inputs_do_not_fit(release: Any) -> None:
    """A release that shipped ONNX: loaded by onnxruntime as it is; today's batch with a third feature breaks it."""
    import torch

    sys.path.insert(0, str(release.path / "src"))
    from model import SpiralNet

    model = SpiralNet()
    model.load_state_dict(torch.load(release.path / "models" / "model.pt")["model"])
    model.eval()
    torch.onnx.export(
        model,
        (torch.randn(4, 2),),
        str(release.path / "models" / "model.onnx"),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
    )
    forget_modules(release.path)
    release.commit(message="release 1.3.0, served as ONNX")
    release.git("tag", "v1.3.0")
    rc, doc = drill("--to", "v1.3.0", "--artifact", "models/model.onnx")
    assert rc == 0, messages(doc)
    assert (
        "ONNX model loads in onnxruntime" in next(c for c in doc["checks"] if c["check"] == "rollback-load")["summary"]
    )
    # the release recorded its golden outputs with models/model.pt, not with this file: they do not judge it
    assert statuses(doc)["rollback-golden spirals"] == "skip"
    spec = release.path / "ci_spec.py"
    spec.write_text(
        spec.read_text()
        .replace("x, y = spirals(", "x2, y = spirals(")
        .replace(
            "batch = torch.from_numpy(x[:32])",
            "x = np.concatenate([x2, x2[:, :1]], 1)\n    batch = torch.from_numpy(x[:32])",
        )
        .replace("SpiralNet(hidden=64", "SpiralNet(in_features=3, hidden=64")
        .replace("import torch\n", "import numpy as np\nimport torch\n", 1)
    )
    rc, doc = drill("--to", "v1.3.0", "--artifact", "models/model.onnx")
    assert rc == 1
    assert statuses(doc)["rollback-serve"] == "fail"
    assert "today's inputs no longer fit it" in messages(doc)


def test_todays_model_raising_is_a_finding_not_a_crash(release: Any) -> None:
    model = release.path / "src" / "model.py"
    model.write_text(model.read_text().replace("super().__init__()", "raise RuntimeError('no config found')"))
    rc, doc = drill("--to", "v1.0.0")
    assert rc == 1
    assert statuses(doc)["rollback-load"] == "fail"
    assert "RuntimeError: no config found" in messages(doc)
