"""Reading files of either side: flattening, what counts as a number, dvc.yaml outputs, curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ci_checks._errors import UserError
from ci_checks.compare.files import CurveSpec, flatten, read_curve, read_dvc_yaml, to_samples
from ci_checks.compare.trees import WorkingTree


@pytest.mark.parametrize(
    ("value", "samples", "invalid"),
    [
        pytest.param(0.5, [0.5], None, id="float"),
        pytest.param(3, [3.0], None, id="int"),
        pytest.param("0.25", [0.25], None, id="numeric-string"),
        pytest.param([1, 2.5], [1.0, 2.5], None, id="seeds"),
        pytest.param(float("nan"), [], "NaN", id="nan"),
        pytest.param(float("inf"), [], "inf", id="inf"),
        pytest.param("abc", [], "a string ('abc'), not a number", id="string"),
        pytest.param(True, [], "a boolean (True), not a number", id="bool"),
        pytest.param(None, [], "null, not a number", id="null"),
        pytest.param([], [], "an empty list", id="empty-list"),
        pytest.param([1, [2]], [], "a nested structure ([1, [2]]), not a list of numbers", id="nested"),
        pytest.param([1, float("nan")], [], "a list with NaN", id="list-with-nan"),
    ],
)
def test_to_samples(value: Any, samples: list[float], invalid: str | None) -> None:
    assert to_samples(value)[:2] == (samples, invalid)


def test_flatten_nested_keys() -> None:
    assert dict(flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": {}})) == {"a.b.c": 1, "a.d": [1, 2], "e": {}}


def test_dvc_yaml_outputs(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("""
stages:
  train:
    cmd: python train.py
    params: [train, {custom.yaml: [lr]}]
    metrics: [metrics/train.json, {metrics/eval.json: {cache: false}}]
    plots: [{plots/loss.csv: {x: epoch, y: [loss, val_loss]}}, plots/confusion.png]
  sweep:
    foreach: [1, 2]
    do:
      cmd: echo ${item}
metrics: [summary.json]
plots:
  - acc:
      x: step
      y: {logs/train.tsv: acc, logs/val.tsv: [acc]}
""")
    found = read_dvc_yaml(WorkingTree(str(tmp_path)))
    assert found is not None
    assert found.metrics == {"metrics/train.json": True, "metrics/eval.json": False, "summary.json": False}
    assert [(c.path, c.x, c.y) for c in found.plots] == [
        ("plots/loss.csv", "epoch", ("loss", "val_loss")),
        ("logs/train.tsv", "step", ("acc",)),
        ("logs/val.tsv", "step", ("acc",)),
    ]
    assert found.params == ["custom.yaml"] and found.templated
    assert read_dvc_yaml(WorkingTree(str(tmp_path / "none"))) is None


def test_read_curve_formats(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"train": [{"step": 0, "loss": 2}, {"step": 1, "loss": 1}]}')
    (tmp_path / "b.csv").write_text("loss,acc\n2,0.1\n1,x\n")
    tree = WorkingTree(str(tmp_path))
    assert read_curve(tree, CurveSpec("a.json")) == ("step", {"step": [0.0, 1.0], "loss": [2.0, 1.0]})
    x, columns = read_curve(tree, CurveSpec("b.csv", y=("acc",)))  # type: ignore[misc]
    assert x == "step" and columns["step"] == [0.0, 1.0] and columns["acc"][0] == 0.1 and columns["acc"][1] != 0.1
    assert read_curve(tree, CurveSpec("missing.csv")) is None
    (tmp_path / "c.json").write_text('{"a": 1, "b": 2}')
    with pytest.raises(UserError, match="c.json: a JSON plot must be a list of records"):
        read_curve(tree, CurveSpec("c.json"))


def test_a_key_with_a_dot_and_a_nested_key_stay_two_metrics() -> None:
    flat = dict(flatten({"val.acc": 1, "val": {"acc": 2}, 'say "hi"': 3}))
    assert flat == {'"val.acc"': 1, "val.acc": 2, '"say \\"hi\\""': 3}


def test_per_class_values_split_into_one_metric_per_class() -> None:
    from ci_checks.compare.files import Metric, per_class

    one_run = Metric("m.json:per_class_f1", "m.json")
    one_run.add([0.9, 0.8, 0.7])
    assert {k: v.samples for k, v in (per_class(one_run) or {}).items()} == {
        "m.json:per_class_f1[0]": [0.9],
        "m.json:per_class_f1[1]": [0.8],
        "m.json:per_class_f1[2]": [0.7],
    }
    seeds = Metric("m.json:f1", "m.json")
    seeds.add([[0.9, 0.8], [0.91, 0.79], [0.89, 0.81]])  # one row per seed
    assert seeds.nested and seeds.samples == [] and seeds.invalid is None
    assert {k: v.samples for k, v in (per_class(seeds) or {}).items()} == {
        "m.json:f1[0]": [0.9, 0.91, 0.89],
        "m.json:f1[1]": [0.8, 0.79, 0.81],
    }
    ragged = Metric("m.json:f1", "m.json")
    ragged.add([[0.9, 0.8], [0.91]])
    assert (per_class(ragged) or {})["m.json:f1[1]"].invalid == "a per-class value missing from 1 of 2 rows"
    scalar = Metric("m.json:f1", "m.json")
    scalar.add(0.5)
    assert per_class(scalar) is None
