"""The training spec: loading FILE.py:FUNC and package.module:FUNC, dict and object forms, and the helpers."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from ci_checks import TrainingSpec, load_from_script, synthetic_batch
from ci_checks._errors import UserError
from ci_checks.checks import CHECKS, run_checks
from ci_checks.spec import check_spec_ref, load_spec, validate

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


# An MNIST script as people write it: torchvision, wandb and apex at the top, used only by main().
MNIST_SCRIPT = '''"""Train a small CNN on MNIST."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import wandb
from torch.optim.lr_scheduler import StepLR
from torchvision import datasets, transforms

try:
    from apex import amp
except ImportError:
    amp = None

MEAN, STD = (0.1307,), (0.3081,)
DATA_DIR = os.environ.get("DATA_DIR", "../data")  # not a constant: dropped


@dataclass
class Config:
    hidden: int = 128
    dropout: float = 0.25
    tags: list[str] = field(default_factory=list)


class Net(nn.Module):
    def __init__(self, config: Config | None = None):
        super().__init__()
        config = config or Config()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(8 * 13 * 13, config.hidden)
        self.fc2 = nn.Linear(config.hidden, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = self.dropout(torch.flatten(x, 1))
        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


class Augmented(Net):
    def __init__(self):
        super().__init__()
        self.augment = transforms.RandomRotation(10)


def train(model, device, loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(loader):
        optimizer.zero_grad()
        loss = F.nll_loss(model(data.to(device)), target.to(device))
        loss.backward()
        optimizer.step()
        wandb.log({"loss": loss.item(), "epoch": epoch})


def main():
    parser = argparse.ArgumentParser(description="PyTorch MNIST Example")
    parser.add_argument("--epochs", type=int, default=14)
    args = parser.parse_args()
    wandb.init(project="mnist")
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    dataset = datasets.MNIST(DATA_DIR, train=True, download=True, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64)
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    for epoch in range(1, args.epochs + 1):
        train(model, "cpu", loader, optimizer, epoch)
        scheduler.step()


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def not_installed(monkeypatch):
    """Make these packages fail to import, as on a CI runner that has only torch (whatever this machine has)."""

    def hide(*names):
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)

    return hide


@pytest.fixture
def mnist(tmp_path, not_installed):
    not_installed("torchvision", "wandb", "apex")
    path = tmp_path / "train_mnist.py"
    path.write_text(MNIST_SCRIPT)
    return path


def test_load_from_script_loads_a_model_whose_script_imports_missing_packages(mnist):
    net_cls = load_from_script(mnist, "Net")
    net = net_cls()
    out = net(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)
    config_cls = load_from_script(mnist, "Config")
    assert config_cls(hidden=16).tags == [] and net_cls(config_cls(hidden=16)).fc1.out_features == 16


def test_a_missing_package_fails_where_it_is_used_naming_it_and_the_line(mnist, monkeypatch):
    augmented = load_from_script(mnist, "Augmented")
    with pytest.raises(ImportError) as exc:
        augmented()
    message = str(exc.value)
    line = MNIST_SCRIPT.splitlines().index("from torchvision import datasets, transforms") + 1
    assert message == f"torchvision is not installed; {mnist} imports it at line {line}"
    assert "\n" not in message and exc.value.name == "torchvision"
    main = load_from_script(mnist, "main")
    monkeypatch.setattr(sys, "argv", [str(mnist)])
    line = MNIST_SCRIPT.splitlines().index("import wandb") + 1
    with pytest.raises(ImportError, match=f"wandb is not installed; .* imports it at line {line}$"):
        main()  # argparse is fine; wandb.init is the first use
    train = load_from_script(mnist, "train")
    assert callable(train)


def test_a_try_import_block_keeps_its_fallback(mnist):
    # the script's own `except ImportError: amp = None` ran, not a placeholder
    assert load_from_script(mnist, "amp") is None
    assert load_from_script(mnist, "MEAN") == (0.1307,)
    with pytest.raises(UserError, match="defines no 'DATA_DIR' at top level"):
        load_from_script(mnist, "DATA_DIR")


def test_a_class_built_on_a_missing_package_fails_at_once(tmp_path, not_installed):
    not_installed("lightning")
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent("""\
        import torch
        from torch import nn
        from lightning import LightningModule, Trainer


        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                return self.fc(x)


        class LitClassifier(LightningModule):
            def __init__(self):
                super().__init__()
                self.model = Classifier()


        Trainer(max_epochs=3).fit(LitClassifier())
    """))
    assert isinstance(load_from_script(path, "Classifier")(), nn.Module)
    with pytest.raises(ImportError, match=r"^lightning is not installed; .*train\.py imports it at line 3$"):
        load_from_script(path, "LitClassifier")


def test_a_definition_that_needs_dropped_code_fails_only_when_asked_for(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent("""\
        import argparse
        from torch import nn

        parser = argparse.ArgumentParser()
        parser.add_argument("--hidden", type=int, default=32)
        args = parser.parse_args()


        def make_head(hidden=args.hidden):
            return nn.Linear(hidden, 2)


        class Tiny(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 2)
    """))
    assert load_from_script(path, "Tiny")().fc.in_features == 3
    with pytest.raises(UserError, match=r"train\.py:9: defining 'make_head' raised NameError: .*'args'"):
        load_from_script(path, "make_head")


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


def test_the_early_check_finds_specs_without_running_any_package_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("raise RuntimeError('userpkg was imported')\n")
    (tmp_path / "userpkg" / "specs.py").write_text("")
    (tmp_path / "nspkg" / "sub").mkdir(parents=True)  # namespace packages: no __init__.py
    (tmp_path / "nspkg" / "sub" / "ci_spec.py").write_text("")
    (tmp_path / "legacy").mkdir()  # its submodules may live anywhere on sys.path: not judged
    (tmp_path / "legacy" / "__init__.py").write_text(
        "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    )
    (tmp_path / "ci_spec.py").write_text("")
    (tmp_path / "lib" / "models").mkdir(parents=True)  # an installed package...
    (tmp_path / "lib" / "models" / "__init__.py").write_text("")
    (tmp_path / "lib" / "models" / "specs.py").write_text("")
    (tmp_path / "models").mkdir()  # ...and a folder of the same name here: the package wins, as in an import
    monkeypatch.syspath_prepend(tmp_path / "lib")
    for ref in (
        "ci_spec.py:training_spec",
        "models.specs:spec",
        f"{tmp_path / 'ci_spec.py'}:training_spec",
        "userpkg.specs:spec",
        "nspkg.sub.ci_spec:spec",
        "legacy.anything:spec",
        "json.decoder:spec",  # an installed package's submodule
    ):
        check_spec_ref(ref)
    for ref, message in (
        (
            "ci_spce.py:training_spec",
            f"ci_spce.py: spec file not found; .* \\(paths are relative to {re.escape(str(tmp_path))}\\)$",
        ),
        ("userpkg.spces:spec", "userpkg.spces: module not found"),
        ("nspkg.sub.nope:spec", "nspkg.sub.nope: module not found"),
        ("json.decoder.nope:spec", "json.decoder.nope: module not found"),  # a module has no submodules
        ("userpkg.specs", "names no function"),
    ):
        with pytest.raises(UserError, match=message):
            check_spec_ref(ref)


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


# ------------------------------------------------------------------ the spec function runs seeded

UNSEEDED_SPEC = """
import random

import numpy as np
import torch
from torch import nn


def training_spec():
    x = torch.randn(16, 8)                      # no seed: the kit seeds before calling this
    y = torch.randint(0, 3, (16,))
    x = x + torch.from_numpy(np.random.rand(16, 8)).float() * random.random()   # the user's own augmentation
    return {
        "model_factory": lambda: nn.Linear(8, 3),
        "optimizer_factory": lambda params: torch.optim.SGD(params, lr=0.1),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (x, y),
    }
"""

PRINT_BATCH = """
import sys
from ci_checks.spec import load_spec

spec = load_spec(sys.argv[1], seed=int(sys.argv[2]))
print(spec.batch[0].tolist(), spec.batch[1].tolist())
"""


@pytest.fixture
def unseeded_spec(tmp_path):
    path = tmp_path / "ci_spec.py"
    path.write_text(UNSEEDED_SPEC)
    return f"{path}:training_spec"


def test_an_unseeded_batch_is_the_same_in_every_process(unseeded_spec):
    def batch_in_a_fresh_process(seed):
        done = subprocess.run(
            [sys.executable, "-c", PRINT_BATCH, unseeded_spec, str(seed)], capture_output=True, text=True, check=True
        )
        return done.stdout

    assert batch_in_a_fresh_process(0) == batch_in_a_fresh_process(0)


def test_an_unseeded_batch_ignores_the_callers_random_state(unseeded_spec):
    import random

    import numpy as np

    torch.manual_seed(1234)
    torch.randn(100)
    first = load_spec(unseeded_spec).batch
    torch.randn(7)  # e.g. other tests ran in between
    random.random()
    np.random.rand()
    second = load_spec(unseeded_spec, seed=None).batch
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(load_spec(unseeded_spec, seed=3).batch[0], first[0])  # the run's seed, not a constant
