"""The training spec: loading FILE.py:FUNC and package.module:FUNC, dict and object forms, and the helpers."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from ci_checks import TrainingSpec, load_from_script, synthetic_batch
from ci_checks._errors import UserError
from ci_checks.checks import CHECKS, run_checks
from ci_checks.spec import load_spec, validate

# ------------------------------------------------------------------ synthetic_batch


def test_synthetic_batch_classification():
    x, y = synthetic_batch((3, 5), batch_size=6, num_classes=4)
    assert x.shape == (6, 3, 5) and x.dtype == torch.float32
    assert y.shape == (6,) and y.dtype == torch.int64
    assert int(y.min()) >= 0 and int(y.max()) < 4


def test_synthetic_batch_tokens_and_sequence_targets():
    x, y = synthetic_batch((7,), batch_size=4, vocab_size=11, num_classes=11, target_shape=(7,))
    assert x.shape == y.shape == (4, 7)
    assert not x.is_floating_point() and int(x.max()) < 11


def test_synthetic_batch_regression_and_batch_dim():
    x, y = synthetic_batch((4,), batch_size=8)
    assert y.shape == (8, 1) and y.is_floating_point()
    x, y = synthetic_batch((10, 4), batch_size=8, batch_dim=1, num_classes=3, target_shape=(10,))
    assert x.shape == (10, 8, 4) and y.shape == (10, 8)


def test_synthetic_batch_is_seeded():
    a, b, c = (synthetic_batch((4,), seed=s) for s in (0, 0, 1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


# ------------------------------------------------------------------ load_from_script

SCRIPT = """
import json
import torch
from torch import nn
from helpers import WIDTH

HIDDEN = 32
NAMES = ("a", "b")
DEVICE = torch.device("meta")  # not a constant: dropped


class Net(nn.Module):
    def __init__(self, hidden=HIDDEN):
        super().__init__()
        self.body = nn.Linear(WIDTH, hidden)

    def forward(self, x):
        return self.body(x)


def make_optimizer(params):
    return torch.optim.SGD(params, lr=0.1)


# Top-level training code, no __main__ guard: must not run.
open("TRAINED", "w").write("the script ran")
model = Net()
raise SystemExit("training started")
"""


@pytest.fixture
def script(tmp_path):
    (tmp_path / "helpers.py").write_text("WIDTH = 4\n")
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def test_load_from_script_skips_top_level_code(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    net_cls = load_from_script(script, "Net")
    net = net_cls()
    assert net.body.in_features == 4 and net.body.out_features == 32
    assert isinstance(load_from_script(str(script), "make_optimizer")(net.parameters()), torch.optim.SGD)
    assert load_from_script(script, "NAMES") == ("a", "b")
    assert not (tmp_path / "TRAINED").exists()
    assert sys.path == path_before


def test_load_from_script_names_what_it_defines(script):
    with pytest.raises(UserError, match="defines no 'DEVICE' at top level; it defines: Net, make_optimizer"):
        load_from_script(script, "DEVICE")


def test_load_from_script_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read the training script"):
        load_from_script(tmp_path / "nope.py", "Net")


# ------------------------------------------------------------------ load_spec

DICT_SPEC = """
import torch
from torch import nn
from ci_checks import synthetic_batch
from helpers import make_model


def spec():
    return {
        "model_factory": make_model,
        "batch": synthetic_batch((4,), batch_size=8, num_classes=3),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": lambda p: torch.optim.Adam(p, lr=0.05),
        "frozen": "0",
        "dataset_url": "https://example.org/data",   # the user's own metadata: ignored
        "owner": {"team": "vision"},
        "memorization": {"max-steps": 40},
        "settings": {"loss_decreases": {"steps": 5}},
    }
"""

HELPERS = """
from torch import nn


def make_model():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
"""


@pytest.fixture
def spec_dir(tmp_path):
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "ci_spec.py").write_text(DICT_SPEC)
    return tmp_path


def test_dict_spec_ignores_unknown_keys_and_reads_settings(spec_dir):
    spec = load_spec(f"{spec_dir / 'ci_spec.py'}:spec", check_names=CHECKS)
    assert isinstance(spec, TrainingSpec)
    assert spec.frozen == ("0",)
    assert spec.settings == {"memorization": {"max-steps": 40}, "loss-decreases": {"steps": 5}}
    assert spec.location is not None and spec.location.line == 8


def test_dict_spec_settings_reach_the_checks(spec_dir):
    report = run_checks(f"{spec_dir / 'ci_spec.py'}:spec", ["loss-decreases"])
    assert report.subject["settings"]["loss-decreases"] == {"steps": 5}
    assert report.checks[0].figures["steps"] == 5


def test_package_module_form(tmp_path, monkeypatch):
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text(HELPERS)
    (package / "specs.py").write_text(DICT_SPEC.replace("from helpers import", "from userpkg.helpers import"))
    monkeypatch.chdir(tmp_path)
    spec = load_spec("userpkg.specs:spec")
    assert spec.location is not None and spec.location.file == "userpkg/specs.py"
    assert run_checks("userpkg.specs:spec", ["loss-at-init"]).status == "pass"


def test_training_spec_object_form(tmp_path):
    (tmp_path / "obj_spec.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        from ci_checks import TrainingSpec, synthetic_batch


        def spec():
            model = nn.Linear(4, 3)
            return TrainingSpec(
                setup=lambda: (model, torch.optim.SGD(model.parameters(), lr=0.1)),
                batch=synthetic_batch((4,), batch_size=8, num_classes=3),
                loss_fn=nn.functional.cross_entropy,
                seed=3,
            )
    """))
    spec = load_spec(f"{tmp_path / 'obj_spec.py'}:spec")
    assert spec.seed == 3 and spec.setup is not None and spec.model_factory is None
    report = run_checks(spec, ["loss-at-init", "parameter-updates"])
    assert report.subject["seed"] == 3
    assert report.status == "pass", [f.message for c in report.checks for f in c.findings]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            "import not_installed_dep\ndef spec(): pass\n",
            "importing it failed: ModuleNotFoundError: No module named 'not_installed_dep'",
            id="dependency-missing",
        ),
        pytest.param("def spec(:\n", "importing it failed: SyntaxError", id="syntax-error"),
        pytest.param(
            "raise RuntimeError('needs a GPU')\n", "importing it failed: RuntimeError: needs a GPU", id="import-raises"
        ),
    ],
)
def test_import_problems_are_user_errors(tmp_path, body, message):
    (tmp_path / "broken.py").write_text(body)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_spec(f"{tmp_path / 'broken.py'}:spec")


def _spec(**overrides):
    fields = {
        "model_factory": lambda: torch.nn.Linear(4, 3),
        "batch": synthetic_batch((4,), num_classes=3),
        "loss_fn": torch.nn.functional.cross_entropy,
        "optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.1),
    }
    fields.update(overrides)
    return TrainingSpec(**fields)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"batch_dim": -1}, "'batch_dim' must be a non-negative int, got -1", id="negative-batch-dim"),
        pytest.param({"batch_dim": True}, "'batch_dim' must be a non-negative int", id="bool-batch-dim"),
        pytest.param(
            {"task": "segmentation"}, "'task' must be 'classification', 'regression' or 'other'", id="bad-task"
        ),
        pytest.param({"loss_fn": "cross_entropy"}, "'loss_fn' must be callable, got str", id="loss-not-callable"),
        pytest.param({"optimizer_factory": None}, "the spec has no 'optimizer_factory'", id="no-optimizer"),
        pytest.param(
            {"batch": (1, 2, 3)}, "'batch' must be a pair (inputs, targets), got tuple of length 3", id="batch-of-3"
        ),
    ],
)
def test_validate_rejects(overrides, message):
    with pytest.raises(UserError) as exc:
        validate(_spec(**overrides), where="spec.py:spec")
    assert str(exc.value).startswith("spec.py:spec: ") and message in str(exc.value)


def test_setup_replaces_the_factories():
    spec = _spec(model_factory=None, optimizer_factory=None, setup=lambda: (None, None))
    assert validate(spec, where="s") is spec


def test_run_checks_validates_spec_objects():
    with pytest.raises(UserError, match="'batch_dim' must be a non-negative int"):
        run_checks(_spec(batch_dim=-1), ["loss-at-init"])
