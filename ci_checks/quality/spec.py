"""The quality spec: which model to judge, on which labelled data, cut into which slices, with which behavioural tests.

A quality spec is a Python function, like the training spec, that returns a dict (or a QualitySpec):

- ``model``: a callable returning the model under test, built from the working tree's code (it may train it);
  or ``checkpoint`` (a path, relative to the spec file; a DVC-tracked artifact is checked out from the DVC cache
  or pulled when it is missing) with ``model_factory`` and optionally ``state_key`` (the state dict's key in the
  checkpoint, e.g. "model"). With both, the checkpoint is used when it can be had and ``model`` otherwise.
- ``dataset``: the evaluation set with known outputs: ``(inputs, targets)`` or a dict with ``inputs``,
  ``targets`` and optionally ``metadata`` (a dict of columns or a pandas DataFrame, one row per example) and
  ``ids``.
- ``slices``: ``{name: {"column": C, "equals": V}}`` (also ``"in": [...]``, ``"min"``/``"max"``) or
  ``{name: predicate}`` with ``predicate(inputs, targets, metadata) -> bool mask``; ``slice_by``: columns whose
  every value is a slice.
- ``behaviour``: CheckList tests as data, each a dict with ``name`` and ``type``: ``MFT`` (``inputs``,
  ``targets``), ``INV`` (``perturb(inputs, targets) -> inputs`` and ``tolerance``, the change of the predicted
  class's probability allowed; 0: only a changed class fails), ``DIR`` (``perturb``, ``expect`` "up" or "down",
  ``of`` "label", "predicted" or a class index, and ``tolerance``, the change the wrong way still allowed). INV
  and DIR run on ``inputs`` and ``targets`` when given, else on the evaluation set.
- ``metrics``: names among METRICS (default accuracy and f1); ``batch_size`` (default 256); ``outputs``: what the
  model returns, "logits" (default) or "probabilities" (a softmax already applied).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_checks._errors import UserError

# Metric name -> which way is better. Computed with torchmetrics (multiclass, macro averages) per slice.
METRICS: dict[str, str] = {
    "accuracy": "higher",
    "f1": "higher",
    "precision": "higher",
    "recall": "higher",
    "loss": "lower",
}
DEFAULT_METRICS = ("accuracy", "f1")
BEHAVIOUR_TYPES = ("MFT", "INV", "DIR")
SPEC_HELP = "a function returning a dict with 'model' (or 'checkpoint' and 'model_factory') and 'dataset'"


@dataclass
class Slice:
    """A named subgroup of the evaluation set: a metadata column's value(s) or range, or a predicate."""

    name: str
    column: str | None = None
    equals: Any = None
    isin: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    predicate: Callable[..., Any] | None = None


@dataclass
class Behaviour:
    """A CheckList-style test declared as data: MFT (labelled cases), INV (invariance), DIR (directional)."""

    name: str
    type: str
    inputs: Any = None
    targets: Any = None
    perturb: Callable[..., Any] | None = None
    tolerance: float = 0.0
    expect: str | None = None  # DIR: "up" or "down"
    of: str | int = "label"  # DIR: whose probability moves: the label's, the predicted class's, or a class index


@dataclass
class QualitySpec:
    """What `ci-checks quality` judges. ``load_model()`` returns the model in eval mode (see the module docstring
    for the fields); ``dataset`` holds inputs, targets, metadata and ids; ``root`` is the spec file's folder, which
    relative checkpoint paths are read from. The rollback drill reuses it to score an old release's model."""

    model: Callable[[], Any] | None = None
    checkpoint: str | None = None
    model_factory: Callable[[], Any] | None = None
    state_key: str | None = None
    dataset: Any = None
    slices: list[Slice] = field(default_factory=list)
    slice_by: tuple[str, ...] = ()
    behaviour: list[Behaviour] = field(default_factory=list)
    metrics: tuple[str, ...] = DEFAULT_METRICS
    batch_size: int = 256
    outputs: str = "logits"  # what the model returns: "logits", or "probabilities" (a softmax already applied)
    root: str = "."
    where: str = "quality spec"

    def checkpoint_path(self) -> str | None:
        if self.checkpoint is None:
            return None
        return self.checkpoint if os.path.isabs(self.checkpoint) else os.path.join(self.root, self.checkpoint)

    def load_model(self) -> Any:
        """The model under test in eval mode: the checkpoint when it can be had (a DVC-tracked one is checked out
        or pulled), else ``model()``. User code that raises is a UserCodeError."""
        from ci_checks.engine.usercode import call_user

        path = self.checkpoint_path()
        if path is not None and not os.path.exists(path):
            from ci_checks.quality.artifacts import fetch_dvc_artifact

            fetch_dvc_artifact(path)
        if path is not None and (os.path.exists(path) or self.model is None):
            model = _load_checkpoint(self, path)
        else:
            assert self.model is not None
            model = call_user("the quality spec's model()", self.model)
        if not hasattr(model, "eval") or not callable(model):
            raise UserError(f"{self.where}: the model must be a torch.nn.Module, got {type(model).__name__}")
        model.eval()
        return model


def _load_checkpoint(spec: QualitySpec, path: str) -> Any:
    import torch

    from ci_checks.engine.usercode import call_user

    if not os.path.exists(path):
        raise UserError(
            f"{path}: the quality spec's checkpoint is missing; train it (dvc repro / dvc pull) or give the spec a "
            "'model' callable to build it"
        )
    if spec.model_factory is None:
        raise UserError(f"{spec.where}: 'checkpoint' needs 'model_factory', a callable returning the fresh module")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise UserError(f"{path}: cannot load the checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(state, torch.nn.Module):
        return state
    if spec.state_key is not None:
        if not isinstance(state, Mapping) or spec.state_key not in state:
            keys = sorted(map(str, state)) if isinstance(state, Mapping) else []
            raise UserError(f"{path}: has no key '{spec.state_key}' (keys: {', '.join(keys[:8])}); fix 'state_key'")
        state = state[spec.state_key]
    model = call_user("the quality spec's model_factory()", spec.model_factory)
    try:
        model.load_state_dict(state)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0][:300]
        raise UserError(
            f"{path}: its weights do not fit model_factory()'s model ({type(e).__name__}: {first}); set "
            "'state_key' or fix the factory"
        ) from None
    return model


_FIELDS = {f.name for f in dataclasses.fields(QualitySpec)} - {"root", "where"}


def from_mapping(data: Mapping[str, Any], *, where: str, root: str) -> QualitySpec:
    """Build and check a QualitySpec from the dict a spec function returned."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        from ci_checks.config import closest

        raise UserError(f"{where}: unknown key '{unknown[0]}' ({closest(unknown[0], sorted(_FIELDS))})")
    spec = QualitySpec(root=root, where=where)
    for key, value in data.items():
        if key == "slices":
            spec.slices = _slices(value, where)
        elif key == "behaviour":
            spec.behaviour = _behaviours(value, where)
        else:
            setattr(spec, key, value)
    return validate(spec)


def validate(spec: QualitySpec) -> QualitySpec:
    """Reject what the suites cannot use, with one line naming the field and the fix."""
    where = spec.where
    for name in ("model", "model_factory"):
        value = getattr(spec, name)
        if value is not None and not callable(value):
            raise UserError(f"{where}: '{name}' must be callable, got {type(value).__name__}")
    if spec.model is None and spec.checkpoint is None:
        raise UserError(f"{where}: the spec has no 'model' and no 'checkpoint'; {SPEC_HELP}")
    if spec.checkpoint is not None and not isinstance(spec.checkpoint, (str, os.PathLike)):
        raise UserError(f"{where}: 'checkpoint' must be a path, got {type(spec.checkpoint).__name__}")
    if spec.checkpoint is not None:
        spec.checkpoint = os.fspath(spec.checkpoint)
        if spec.model_factory is None and spec.model is None:
            raise UserError(f"{where}: 'checkpoint' needs 'model_factory', a callable returning the fresh module")
    if spec.dataset is None:
        raise UserError(f"{where}: the spec has no 'dataset'; add (inputs, targets) or a dict with inputs, targets")
    if isinstance(spec.metrics, str):
        spec.metrics = (spec.metrics,)
    if not isinstance(spec.metrics, (list, tuple)) or not spec.metrics:
        raise UserError(f"{where}: 'metrics' must be a list of names among {', '.join(METRICS)}")
    for name in spec.metrics:
        if name not in METRICS:
            from ci_checks.config import closest

            raise UserError(f"{where}: unknown metric {name!r} ({closest(str(name), list(METRICS), 'metrics')})")
    spec.metrics = tuple(dict.fromkeys(spec.metrics))
    if isinstance(spec.slice_by, str):
        spec.slice_by = (spec.slice_by,)
    if not isinstance(spec.slice_by, (list, tuple)) or not all(isinstance(c, str) for c in spec.slice_by):
        raise UserError(f"{where}: 'slice_by' must be a list of metadata column names")
    spec.slice_by = tuple(spec.slice_by)
    if spec.outputs not in ("logits", "probabilities"):
        raise UserError(f'{where}: \'outputs\' must be "logits" or "probabilities", got {spec.outputs!r}')
    if not isinstance(spec.batch_size, int) or isinstance(spec.batch_size, bool) or spec.batch_size < 1:
        raise UserError(f"{where}: 'batch_size' must be a positive integer, got {spec.batch_size!r}")
    return spec


def _name(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable() or len(value) > 100:
        raise UserError(f"{where}: {what} name {value!r} must be a printable string of 1 to 100 characters")
    return value


def _slices(value: Any, where: str) -> list[Slice]:
    if not isinstance(value, Mapping):
        raise UserError(f"{where}: 'slices' must be a dict of name -> {{'column': ..., 'equals': ...}} or predicate")
    out = []
    for name, rule in value.items():
        name = _name(name, "slice", where)
        if callable(rule):
            out.append(Slice(name, predicate=rule))
            continue
        if not isinstance(rule, Mapping) or not isinstance(rule.get("column"), str):
            raise UserError(
                f"{where}: slice '{name}' must be a predicate or a dict with 'column' and 'equals', 'in', 'min' or "
                "'max'"
            )
        extra = sorted(set(rule) - {"column", "equals", "in", "min", "max"})
        if extra:
            raise UserError(f"{where}: slice '{name}' has unknown key '{extra[0]}' (use equals, in, min or max)")
        if not set(rule) & {"equals", "in", "min", "max"}:
            raise UserError(f"{where}: slice '{name}' needs 'equals', 'in', 'min' or 'max' besides 'column'")
        isin = rule.get("in")
        if isin is not None and (isinstance(isin, str) or not isinstance(isin, Sequence)):
            raise UserError(f"{where}: slice '{name}': 'in' must be a list of values")
        bounds = []
        for key in ("min", "max"):
            bound = rule.get(key)
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
                raise UserError(f"{where}: slice '{name}': '{key}' must be a number, got {bound!r}")
            bounds.append(None if bound is None else float(bound))
        out.append(
            Slice(
                name,
                column=rule["column"],
                equals=rule.get("equals"),
                isin=None if isin is None else tuple(isin),
                minimum=bounds[0],
                maximum=bounds[1],
            )
        )
    return out


def _behaviours(value: Any, where: str) -> list[Behaviour]:
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{where}: 'behaviour' must be a list of tests (dicts with name and type MFT, INV or DIR)")
    out: list[Behaviour] = []
    seen: set[str] = set()
    for i, test in enumerate(value):
        if not isinstance(test, Mapping):
            raise UserError(f"{where}: behaviour[{i}] must be a dict with 'name' and 'type', got {type(test).__name__}")
        name = _name(test.get("name"), f"behaviour[{i}]", where)
        if name in seen:
            raise UserError(f"{where}: two behavioural tests are named '{name}'; give each its own name")
        seen.add(name)
        kind = str(test.get("type", "")).upper()
        if kind not in BEHAVIOUR_TYPES:
            raise UserError(f"{where}: behaviour '{name}' has type {test.get('type')!r}; use MFT, INV or DIR")
        known = {"name", "type", "inputs", "targets", "perturb", "tolerance", "expect", "of"}
        extra = sorted(set(test) - known)
        if extra:
            raise UserError(f"{where}: behaviour '{name}' has unknown key '{extra[0]}' ({', '.join(sorted(known))})")
        b = Behaviour(name, kind, inputs=test.get("inputs"), targets=test.get("targets"))
        tolerance = test.get("tolerance", 0.0)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 1:
            raise UserError(f"{where}: behaviour '{name}': 'tolerance' must be a probability change in [0, 1]")
        b.tolerance = float(tolerance)
        if kind == "MFT":
            if b.inputs is None or b.targets is None:
                raise UserError(f"{where}: MFT '{name}' needs 'inputs' and 'targets' (its labelled cases)")
        else:
            b.perturb = test.get("perturb")
            if not callable(b.perturb):
                raise UserError(f"{where}: {kind} '{name}' needs 'perturb', a callable (inputs, targets) -> inputs")
            if (b.inputs is None) != (b.targets is None):
                raise UserError(f"{where}: {kind} '{name}': give both 'inputs' and 'targets', or neither")
        if kind == "DIR":
            if test.get("expect") not in ("up", "down"):
                raise UserError(f"{where}: DIR '{name}' needs 'expect': \"up\" or \"down\"")
            b.expect = test["expect"]
            of = test.get("of", "label")
            if of not in ("label", "predicted") and (isinstance(of, bool) or not isinstance(of, int) or of < 0):
                raise UserError(f"{where}: DIR '{name}': 'of' must be \"label\", \"predicted\" or a class index")
            b.of = of
        out.append(b)
    return out


def load_quality_spec(ref: str, *, seed: int = 0) -> QualitySpec:
    """Call FILE.py:FUNC or package.module:FUNC and check what it returns (a dict or a QualitySpec)."""
    from ci_checks.spec import call_spec_function, check_spec_ref

    check_spec_ref(ref)
    value, _, where = call_spec_function(ref, seed=seed)
    target = ref.rpartition(":")[0]
    root = os.path.dirname(os.path.abspath(target)) if target.endswith(".py") or "/" in target else os.getcwd()
    if isinstance(value, QualitySpec):
        value.root, value.where = root, where
        return validate(value)
    if not isinstance(value, Mapping):
        raise UserError(f"{where}: must return a dict or a ci_checks.quality.QualitySpec, got {type(value).__name__}")
    return from_mapping(value, where=where, root=root)
