"""Run the model under test over the evaluation set, the behavioural tests and the named suites: per-example results.

Everything later (metrics, confidence intervals, comparison with the base) works on these per-example arrays, so
the base revision's run (in another process) hands over one .npz file and no model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_checks._errors import UserError
from ci_checks.quality.spec import Behaviour, QualitySpec, Slice

MAX_SLICE_VALUES = 50  # slice_by a column with more distinct values than this is an id, not a subgroup
SUITE_SUFFIX = ".quality.json"  # a named suite of hard examples: NAME.quality.json next to golden's NAME.pt


@dataclass
class BehaviourRun:
    """One behavioural test's per-case outcome: failed, and how far each case went the wrong way."""

    name: str
    type: str
    failed: Any  # bool [M]
    violation: Any  # float [M]: 0 when the case passed
    ids: list[str]
    tolerance: float | None = None
    expect: str | None = None


@dataclass
class SuiteRun:
    """A named suite of hard examples: the labels recorded when it was mined and today's per-case results."""

    name: str
    correct: Any  # bool [K]
    loss: Any  # float [K]
    ids: list[str]
    mined_correct: Any  # bool [K]: how the model that was mined did
    failure: str = ""  # the failure type the suite is named after (its description)


@dataclass
class Evaluation:
    """The per-example results of one model: what every suite and comparison is computed from."""

    probs: Any  # float [N, C]
    targets: Any  # int [N]
    losses: Any  # float [N]
    ids: list[str]
    slices: dict[str, Any]  # name -> bool [N]
    behaviour: dict[str, BehaviourRun] = field(default_factory=dict)
    suites: dict[str, SuiteRun] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()

    @property
    def predictions(self) -> Any:
        return self.probs.argmax(1)

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])


# ---------------------------------------------------------------- the model's outputs


def take(inputs: Any, index: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(inputs, torch.Tensor):
        return inputs[torch.as_tensor(index, dtype=torch.long)]
    if isinstance(inputs, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(inputs[index]))
    if isinstance(inputs, Mapping):
        return {k: take(v, index) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(take(v, index) for v in inputs)
    raise UserError(f"inputs of type {type(inputs).__name__} cannot be batched; give a tensor, array, tuple or dict")


def _length(inputs: Any, what: str) -> int:
    import numpy as np
    import torch

    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        if inputs.ndim == 0:
            raise UserError(f"{what}: inputs are a scalar; give one row per example")
        return int(inputs.shape[0])
    if isinstance(inputs, Mapping) and inputs:
        return _length(next(iter(inputs.values())), what)
    if isinstance(inputs, (tuple, list)) and inputs:
        return _length(inputs[0], what)
    raise UserError(
        f"{what}: inputs must be a tensor or array (or a tuple or dict of them), got {type(inputs).__name__}"
    )


def _to_device(inputs: Any, device: Any) -> Any:
    import torch

    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, Mapping):
        return {k: _to_device(v, device) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_to_device(v, device) for v in inputs)
    return inputs


def _call(model: Any, x: Any) -> Any:
    if isinstance(x, Mapping):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def probabilities(model: Any, inputs: Any, *, batch_size: int, what: str, outputs: str = "logits") -> Any:
    """Class probabilities [N, C] (float64 numpy), batch by batch, without gradients: the softmax of the model's
    logits, or (outputs="probabilities") what the model returns, renormalized."""
    import numpy as np
    import torch

    from ci_checks.engine.usercode import call_user

    n = _length(inputs, what)
    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        device = torch.device("cpu")
    chunks = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = _to_device(take(inputs, np.arange(start, min(n, start + batch_size))), device)
            out = call_user(f"the model on {what}", _call, model, x)
            if isinstance(out, (tuple, list)) and out:
                out = out[0]
            if isinstance(out, Mapping) and "logits" in out:
                out = out["logits"]
            if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] < 2:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise UserError(
                    f"{what}: the model returned {shape}; the quality suites need class logits [batch, classes] "
                    "(classification with 2+ classes)"
                )
            out = out.detach().double().cpu()
            if outputs == "probabilities":
                if bool((out < 0).any()) or not bool(torch.isfinite(out).all()):
                    raise UserError(
                        f"{what}: the model returned values outside [0, 1] but the spec says outputs = "
                        "'probabilities'; set outputs to 'logits' (the default)"
                    )
                chunks.append((out / out.sum(1, keepdim=True).clamp_min(1e-300)).numpy())
            else:
                chunks.append(torch.softmax(out, dim=1).numpy())
    if not chunks:
        raise UserError(f"{what}: no examples; give at least one")
    return np.concatenate(chunks)


def _as_targets(targets: Any, n: int, classes: int | None, what: str) -> Any:
    import numpy as np
    import torch

    if isinstance(targets, torch.Tensor):
        targets = targets.detach().cpu().numpy()
    arr = np.asarray(targets)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(
            f"{what}: targets must be {n} class indices (integers, shape [{n}]), got {arr.dtype} {arr.shape}"
        )
    if classes is not None and n and (arr.min() < 0 or arr.max() >= classes):
        raise UserError(f"{what}: targets must be class indices in [0, {classes}), got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def _losses(probs: Any, targets: Any) -> Any:
    import numpy as np

    return -np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, 1.0))


# ---------------------------------------------------------------- the dataset, its metadata and slices


@dataclass
class Dataset:
    inputs: Any
    targets: Any
    metadata: dict[str, Any]
    ids: list[str]
    given_targets: Any = None  # the targets as the spec gave them (a tensor, an array), for its predicates
    given_metadata: Any = None  # the metadata as the spec gave it (a DataFrame, a dict), for its predicates


def dataset_of(spec: QualitySpec) -> Dataset:
    """The evaluation set the spec declares, checked: inputs, targets, metadata columns and ids of one length."""
    import numpy as np

    data = spec.dataset
    where = spec.where
    if callable(data):
        from ci_checks.engine.usercode import call_user

        data = call_user("the quality spec's dataset()", data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        data = {"inputs": data[0], "targets": data[1]}
    if not isinstance(data, Mapping) or "inputs" not in data or "targets" not in data:
        raise UserError(f"{where}: 'dataset' must be (inputs, targets) or a dict with 'inputs' and 'targets'")
    extra = sorted(set(data) - {"inputs", "targets", "metadata", "ids"})
    if extra:
        raise UserError(f"{where}: dataset has unknown key '{extra[0]}' (inputs, targets, metadata, ids)")
    n = _length(data["inputs"], f"{where}: dataset")
    targets = _as_targets(data["targets"], n, None, f"{where}: dataset")
    metadata: dict[str, Any] = {}
    raw = data.get("metadata")
    if raw is not None:
        if hasattr(raw, "to_dict") and hasattr(raw, "columns"):  # a pandas (or polars) DataFrame
            raw = {str(c): np.asarray(raw[c]) for c in raw.columns}
        if not isinstance(raw, Mapping):
            raise UserError(f"{where}: dataset metadata must be a dict of columns or a DataFrame")
        for column, values in raw.items():
            arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
            if arr.shape[:1] != (n,):
                raise UserError(f"{where}: metadata column {column!r} has {arr.shape[:1]} rows, the dataset {n}")
            metadata[str(column)] = arr
    ids_raw = data.get("ids")
    ids = [str(i) for i in range(n)] if ids_raw is None else [str(i) for i in list(ids_raw)]
    if len(ids) != n:
        raise UserError(f"{where}: dataset 'ids' has {len(ids)} entries, the dataset {n}")
    if len(set(ids)) != n:
        raise UserError(f"{where}: dataset 'ids' are not unique; give each example its own id")
    return Dataset(data["inputs"], targets, metadata, ids, data["targets"], data.get("metadata"))


def slice_masks(spec: QualitySpec, data: Dataset) -> dict[str, Any]:
    """Every slice's membership mask, the declared ones first, then one per value of each slice_by column."""
    import numpy as np

    from ci_checks.engine.usercode import call_user

    n = len(data.targets)
    masks: dict[str, Any] = {}
    for s in spec.slices:
        if s.predicate is not None:
            raw = call_user(f"slice '{s.name}'", s.predicate, data.inputs, data.given_targets, data.given_metadata)
            mask = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw)
            if mask.shape != (n,) or mask.dtype != bool:
                raise UserError(
                    f"{spec.where}: slice '{s.name}' must return {n} booleans, got {mask.dtype} {mask.shape}"
                )
        else:
            mask = _column_mask(s, data, spec.where)
        masks[s.name] = mask
    for column in spec.slice_by:
        values = _column(data, column, spec.where, f"slice_by '{column}'")
        distinct = sorted(set(values.tolist()), key=str)
        if len(distinct) > MAX_SLICE_VALUES:
            raise UserError(
                f"{spec.where}: slice_by '{column}' has {len(distinct)} values (more than {MAX_SLICE_VALUES}); "
                "slice by a coarser column or declare the slices"
            )
        for value in distinct:
            masks[f"{column}={value}"] = values == value
    return masks


def _column(data: Dataset, column: str, where: str, what: str) -> Any:
    if column not in data.metadata:
        from ci_checks.config import closest

        raise UserError(
            f"{where}: {what} names metadata column {column!r}, which the dataset lacks "
            f"({closest(column, sorted(data.metadata), 'columns')})"
        )
    return data.metadata[column]


def _column_mask(s: Slice, data: Dataset, where: str) -> Any:
    import numpy as np

    assert s.column is not None
    values = _column(data, s.column, where, f"slice '{s.name}'")
    mask = np.ones(len(values), dtype=bool)
    if s.equals is not None:
        mask &= values == s.equals
    if s.isin is not None:
        mask &= np.isin(values, np.asarray(s.isin))
    for bound, op in ((s.minimum, np.greater_equal), (s.maximum, np.less)):
        if bound is not None:
            if not np.issubdtype(values.dtype, np.number):
                raise UserError(
                    f"{where}: slice '{s.name}': column {s.column!r} is not numeric, so min/max cannot apply"
                )
            mask &= op(values, bound)
    return np.asarray(mask, dtype=bool)


# ---------------------------------------------------------------- behavioural tests


def _seeded(fn: Callable[..., Any], *args: Any, what: str) -> Any:
    """A perturbation, called after seeding, so a random one perturbs the same way on both sides of a comparison."""
    from ci_checks.engine.seeding import seed_everything
    from ci_checks.engine.usercode import call_user

    seed_everything(0)
    return call_user(what, fn, *args)


def run_behaviour(
    b: Behaviour, model: Any, data: Dataset, base_probs: Any, *, batch_size: int, where: str, outputs: str = "logits"
) -> BehaviourRun:
    """Run one behavioural test: per case, whether it failed and by how much."""
    import numpy as np

    what = f"behaviour '{b.name}'"
    if b.type == "MFT":
        n = _length(b.inputs, f"{where}: {what}")
        probs = probabilities(model, b.inputs, batch_size=batch_size, what=what, outputs=outputs)
        targets = _as_targets(b.targets, n, probs.shape[1], f"{where}: {what}")
        p_true = probs[np.arange(n), targets]
        failed = probs.argmax(1) != targets
        return BehaviourRun(b.name, b.type, failed, np.where(failed, 1.0 - p_true, 0.0), [str(i) for i in range(n)])
    if b.inputs is None:
        inputs, targets, ids, before = data.inputs, data.targets, data.ids, base_probs
    else:
        n = _length(b.inputs, f"{where}: {what}")
        inputs, ids = b.inputs, [str(i) for i in range(n)]
        before = probabilities(model, inputs, batch_size=batch_size, what=what, outputs=outputs)
        targets = _as_targets(b.targets, n, before.shape[1], f"{where}: {what}")
    assert b.perturb is not None
    perturbed = _seeded(b.perturb, inputs, _tensor(targets), what=f"{what}: perturb()")
    if _length(perturbed, f"{where}: {what} perturb()") != len(ids):
        raise UserError(f"{where}: {what}: perturb() returned another number of examples than it was given")
    after = probabilities(model, perturbed, batch_size=batch_size, what=f"{what} (perturbed)", outputs=outputs)
    rows = np.arange(len(ids))
    predicted = before.argmax(1)
    if b.type == "INV":
        change = np.abs(after[rows, predicted] - before[rows, predicted])
        flipped = after.argmax(1) != predicted
        failed = flipped | (change > b.tolerance) if b.tolerance > 0 else flipped
        violation = np.where(failed, np.maximum(change, flipped.astype(float)), 0.0)
        return BehaviourRun(b.name, b.type, failed, violation, list(ids), tolerance=b.tolerance)
    of = targets if b.of == "label" else predicted if b.of == "predicted" else np.full(len(ids), int(b.of))
    if int(of.max(initial=0)) >= before.shape[1]:
        raise UserError(f"{where}: DIR '{b.name}': class {int(of.max())} is not one of the model's classes")
    delta = after[rows, of] - before[rows, of]
    wrong = -delta if b.expect == "up" else delta
    failed = wrong > b.tolerance
    return BehaviourRun(b.name, b.type, failed, np.where(failed, wrong, 0.0), list(ids), b.tolerance, b.expect)


def _tensor(targets: Any) -> Any:
    import torch

    return torch.from_numpy(targets)


# ---------------------------------------------------------------- named suites of hard examples


def suite_files(directory: str) -> dict[str, str]:
    """The named suites in a folder: NAME -> NAME.quality.json, in name order."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    return {f[: -len(SUITE_SUFFIX)]: os.path.join(directory, f) for f in names if f.endswith(SUITE_SUFFIX)}


def read_suite(path: str) -> dict[str, Any]:
    """A suite file written by `quality --mine`, checked; UserError naming the file when it is not one."""
    name = os.path.basename(path)[: -len(SUITE_SUFFIX)]
    fix = f"mine it again with ci-checks quality --mine N --suite-name {name}"
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path}: cannot read the suite ({type(e).__name__}); {fix}") from None
    ok = (
        isinstance(doc, dict)
        and isinstance(doc.get("inputs"), str)
        and isinstance(doc.get("targets"), list)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in doc["targets"])
        and isinstance(doc.get("ids"), list)
        and len(doc["ids"]) == len(doc["targets"])
        and isinstance(doc.get("correct", []), list)
    )
    if not ok:
        raise UserError(f"{path}: not a suite written by ci-checks quality --mine (inputs, targets, ids); {fix}")
    return dict(doc)


def run_suite(name: str, path: str, model: Any, *, batch_size: int, outputs: str = "logits") -> SuiteRun:
    import numpy as np
    import torch

    doc = read_suite(path)
    inputs_path = os.path.join(os.path.dirname(path), os.path.basename(doc["inputs"]))
    try:
        inputs = torch.load(inputs_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{inputs_path}: the inputs of suite '{name}' are missing; mine the suite again") from None
    except Exception as e:
        raise UserError(f"{inputs_path}: cannot load the inputs of suite '{name}' ({type(e).__name__})") from None
    n = len(doc["targets"])
    if _length(inputs, f"suite '{name}'") != n:
        raise UserError(f"{inputs_path}: holds another number of examples than {path} lists ({n})")
    probs = probabilities(model, inputs, batch_size=batch_size, what=f"suite '{name}'", outputs=outputs)
    targets = _as_targets(np.asarray(doc["targets"], dtype=np.int64), n, probs.shape[1], f"{path}")
    mined = doc.get("correct") or [False] * n
    return SuiteRun(
        name,
        probs.argmax(1) == targets,
        _losses(probs, targets),
        [str(i) for i in doc["ids"]],
        np.asarray([bool(c) for c in mined][:n] + [False] * max(0, n - len(mined))),
        failure=str(doc.get("failure", "")),
    )


# ---------------------------------------------------------------- the whole evaluation


def evaluate(
    spec: QualitySpec, *, suites_dir: str | None = None, log: Callable[[str], None] = lambda _: None
) -> Evaluation:
    """Load the model and run every suite of the spec over it; the per-example results."""
    data = dataset_of(spec)
    masks = slice_masks(spec, data)
    log("loading the model under test")
    model = spec.load_model()
    log(f"evaluating {len(data.targets)} examples")
    what = "the evaluation set"
    probs = probabilities(model, data.inputs, batch_size=spec.batch_size, what=what, outputs=spec.outputs)
    targets = _as_targets(data.targets, len(data.targets), probs.shape[1], f"{spec.where}: dataset")
    result = Evaluation(probs, targets, _losses(probs, targets), data.ids, masks, metrics=spec.metrics)
    for b in spec.behaviour:
        log(f"behavioural test {b.name} ({b.type})")
        result.behaviour[b.name] = run_behaviour(
            b, model, data, probs, batch_size=spec.batch_size, where=spec.where, outputs=spec.outputs
        )
    if suites_dir:
        for name, path in suite_files(suites_dir).items():
            log(f"suite {name}")
            result.suites[name] = run_suite(name, path, model, batch_size=spec.batch_size, outputs=spec.outputs)
    return result


# ---------------------------------------------------------------- hand-over between processes


def save(evaluation: Evaluation, path: str) -> None:
    """Write an evaluation to one .npz (atomically): the base revision's process hands it to the command."""
    import numpy as np

    from ci_checks import _io

    arrays: dict[str, Any] = {"probs": evaluation.probs, "targets": evaluation.targets, "losses": evaluation.losses}
    meta: dict[str, Any] = {
        "ids": evaluation.ids,
        "slices": list(evaluation.slices),
        "metrics": list(evaluation.metrics),
        "behaviour": [],
        "suites": [],
    }
    for i, mask in enumerate(evaluation.slices.values()):
        arrays[f"slice_{i}"] = mask
    for i, b in enumerate(evaluation.behaviour.values()):
        arrays[f"b_failed_{i}"], arrays[f"b_violation_{i}"] = b.failed, b.violation
        meta["behaviour"].append(
            {"name": b.name, "type": b.type, "ids": b.ids, "tolerance": b.tolerance, "expect": b.expect}
        )
    for i, s in enumerate(evaluation.suites.values()):
        arrays[f"s_correct_{i}"], arrays[f"s_loss_{i}"], arrays[f"s_mined_{i}"] = s.correct, s.loss, s.mined_correct
        meta["suites"].append({"name": s.name, "ids": s.ids, "failure": s.failure})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    _io.write_with(path, write, suffix=".npz")


def load(path: str) -> Evaluation:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode("utf-8"))
        ev = Evaluation(
            data["probs"],
            data["targets"],
            data["losses"],
            list(meta["ids"]),
            {name: data[f"slice_{i}"] for i, name in enumerate(meta["slices"])},
            metrics=tuple(meta["metrics"]),
        )
        for i, b in enumerate(meta["behaviour"]):
            ev.behaviour[b["name"]] = BehaviourRun(
                b["name"],
                b["type"],
                data[f"b_failed_{i}"],
                data[f"b_violation_{i}"],
                list(b["ids"]),
                b["tolerance"],
                b["expect"],
            )
        for i, s in enumerate(meta["suites"]):
            ev.suites[s["name"]] = SuiteRun(
                s["name"],
                data[f"s_correct_{i}"],
                data[f"s_loss_{i}"],
                list(s["ids"]),
                data[f"s_mined_{i}"],
                s["failure"],
            )
    return ev


def subset(values: Sequence[Any], mask: Any) -> list[Any]:
    return [v for v, keep in zip(values, mask) if keep]
