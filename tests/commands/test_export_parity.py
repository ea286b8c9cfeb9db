"""export-parity against real torch.onnx export and onnxruntime."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from ci_checks.main import main

pytest.importorskip("onnxruntime")

SPEC = textwrap.dedent("""
    import torch
    from torch import nn

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
        def forward(self, x):
            return self.net(x)

    class Branchy(Plain):
        def forward(self, x):
            if x[0, 0] > 0:  # a Python branch on data: frozen at export
                return self.net(x)
            return -self.net(x)

    class Unsupported(Plain):
        def forward(self, x):
            return torch.cummax(self.net(x), 1)[0]

    class TimeMajor(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 8)
            self.rnn = nn.GRU(8, 8)
            self.out = nn.Linear(8, 20)
        def forward(self, tokens):
            h, _ = self.rnn(self.emb(tokens))
            return self.out(h)

    def _spec(cls, x, **kw):
        return {"model_factory": cls, "optimizer_factory": lambda p: torch.optim.SGD(p, lr=0.1),
                "loss_fn": lambda o, t: o.float().mean(), "batch": (x, None), **kw}

    def plain():
        return _spec(Plain, torch.randn(6, 4))

    def branchy():
        x = torch.randn(6, 4)
        x[0, 0] = 1.0
        return _spec(Branchy, x)

    def unsupported():
        return _spec(Unsupported, torch.randn(6, 4))

    def time_major():
        return _spec(TimeMajor, torch.randint(0, 20, (5, 3)), batch_dim=1)

    def export_dies_half_way():
        def export(model, inputs, path):
            with open(path, "wb") as fh:
                fh.write(b"half of a model")
            raise RuntimeError("out of disk space")
        return _spec(Plain, torch.randn(6, 4), export=export)
    """)


@pytest.fixture
def spec_file(tmp_path: Path) -> str:
    path = tmp_path / "export_spec.py"
    path.write_text(SPEC)
    return str(path)


def run(spec_file: str, func: str, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / f"{func}.json"
    code = main(["export-parity", "--spec", f"{spec_file}:{func}", "--format", "json", "--output", str(out), *extra])
    return code, json.loads(out.read_text()) if out.exists() else {}


def checks(doc: dict) -> dict:
    return {c["check"]: c for c in doc["checks"]}


def test_parity_passes_with_dynamic_batch_and_reports_latency(spec_file: str, tmp_path: Path) -> None:
    code, doc = run(spec_file, "plain", tmp_path)
    assert code == 0, doc
    by = checks(doc)
    parity = by["onnx-parity"]["figures"]
    assert parity["inputs"] == 4  # the batch, and fresh inputs at batch 1, 6 and 13
    assert set(parity["per_input"]) == {
        "spec batch",
        "fresh inputs, batch 1",
        "fresh inputs, batch 6",
        "fresh inputs, batch 13",
    }
    assert parity["max_abs_diff"] < 1e-4
    assert by["onnx-latency"]["figures"]["onnxruntime_ms"] > 0


def test_time_major_token_model_exports_with_batch_on_axis_1(spec_file: str, tmp_path: Path) -> None:
    code, doc = run(spec_file, "time_major", tmp_path)
    assert code == 0, doc
    assert checks(doc)["onnx-parity"]["figures"]["per_input"]["fresh inputs, batch 7"] < 1e-4


def test_data_dependent_branch_diverges_with_a_clear_message(spec_file: str, tmp_path: Path) -> None:
    code, doc = run(spec_file, "branchy", tmp_path)
    assert code == 1
    message = checks(doc)["onnx-parity"]["findings"][0]["message"]
    assert "differ from PyTorch eval mode" in message and "match on the export input" in message
    assert "data-dependent" in message


def test_unsupported_operator_fails_in_one_line(spec_file: str, tmp_path: Path) -> None:
    code, doc = run(spec_file, "unsupported", tmp_path)
    assert code == 1
    message = checks(doc)["onnx-export"]["findings"][0]["message"]
    assert "cummax" in message and "cannot be exported" in message


def test_golden_inputs_and_weights(spec_file: str, tmp_path: Path) -> None:
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("export_spec_mod", spec_file)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    weights = tmp_path / "w.pt"
    torch.save({"model": module.Plain().state_dict()}, weights)
    golden = tmp_path / "golden.pt"
    torch.save(torch.randn(2, 4), golden)
    code, doc = run(spec_file, "plain", tmp_path, "--weights", str(weights), "--inputs", str(golden))
    assert code == 0
    assert "golden golden.pt" in checks(doc)["onnx-parity"]["figures"]["per_input"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--weights", "missing.pt"], "weights file not found", id="missing-weights"),
        pytest.param(["--inputs", "missing.pt"], "cannot load golden inputs", id="missing-golden"),
    ],
)
def test_bad_input_exits_2(
    spec_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["export-parity", "--spec", f"{spec_file}:plain", *args]) == 2
    assert message in capsys.readouterr().err


def test_wrong_weights_exit_2(spec_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.pt"
    torch.save({"other": torch.zeros(1)}, weights)
    assert main(["export-parity", "--spec", f"{spec_file}:plain", "--weights", str(weights)]) == 2
    assert "does not fit the spec's model" in capsys.readouterr().err


def test_golden_inputs_the_model_rejects_exit_2(
    spec_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = tmp_path / "wrong.pt"
    torch.save(torch.randn(4, 5), golden)
    assert main(["export-parity", "--spec", f"{spec_file}:plain", "--inputs", str(golden)]) == 2
    assert "the model rejects these golden inputs" in capsys.readouterr().err


def test_format_and_spec_from_pyproject(
    spec_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """[tool.ci-checks] spec and format are honoured by export-parity as by every command."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(f'[tool.ci-checks]\nspec = "{spec_file}:plain"\nformat = "json"\n')
    assert main(["export-parity"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "export-parity" and doc["status"] == "pass"


def test_keep_writes_the_model_atomically_and_a_failed_export_keeps_the_old_one(spec_file: str, tmp_path: Path) -> None:
    kept = tmp_path / "model.onnx"
    code, _ = run(spec_file, "plain", tmp_path, "--keep", str(kept))
    assert code == 0
    exported = kept.read_bytes()
    assert exported.startswith(b"\x08")  # an ONNX ModelProto
    for failing in ("unsupported", "export_dies_half_way"):
        code, _ = run(spec_file, failing, tmp_path, "--keep", str(kept))
        assert code == 1
        assert kept.read_bytes() == exported  # not truncated, not half-written by the failed export
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".ci-checks-tmp-")]
