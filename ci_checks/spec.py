"""The training spec: how a user points ci-checks at their model, and helpers that keep specs short."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ci_checks._errors import UserError
from ci_checks.results import Location

if TYPE_CHECKING:
    import torch

SPEC_HELP = "pass --spec path/to/file.py:function or --spec package.module:function"


@dataclass
class TrainingSpec:
    """What the checks need to train a model: factories, one batch, the loss and optionally the user's own step.

    ``model_factory`` returns a fresh module; ``batch`` is ``(inputs, targets)``; ``loss_fn(outputs, targets)``
    returns a scalar; ``optimizer_factory(params)`` returns an optimizer. ``train_step(model, batch, loss_fn,
    optimizer) -> loss`` replaces the kit's default step, ``setup() -> (model, optimizer)`` replaces both
    factories. ``forward(model, inputs)`` says how to call the model (default: ``model(x)``, ``model(*x)`` for
    a tuple, ``model(**x)`` for a dict) and ``prediction(outputs)`` picks the prediction tensor out of the
    model's outputs (default rule: see docs/train-check.md).
    """

    model_factory: Callable[[], Any] | None = None
    batch: Any = None
    loss_fn: Callable[[Any, Any], Any] | None = None
    optimizer_factory: Callable[[Any], Any] | None = None
    train_step: Callable[..., Any] | None = None
    setup: Callable[[], Any] | None = None
    save_checkpoint: Callable[[Any, Any, str], Any] | None = None
    load_checkpoint: Callable[[Any, Any, str], Any] | None = None
    forward: Callable[[Any, Any], Any] | None = None
    prediction: Callable[[Any], Any] | None = None
    export: Callable[[Any, Any, str], Any] | None = None
    frozen: Sequence[str] = ()
    batch_dim: int = 0
    device: str | None = None
    seed: int = 0
    num_classes: int | None = None
    task: str | None = None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    location: Location | None = None


_FIELDS = {f.name for f in dataclasses.fields(TrainingSpec)} - {"settings", "location"}
_CALLABLE_FIELDS = (
    "model_factory",
    "loss_fn",
    "optimizer_factory",
    "train_step",
    "setup",
    "save_checkpoint",
    "load_checkpoint",
    "forward",
    "prediction",
    "export",
)
_FIELD_HELP = {
    "model_factory": "a callable returning a fresh torch.nn.Module",
    "batch": "one small batch (inputs, targets) of tensors, tuples or dicts of tensors",
    "loss_fn": "a callable (outputs, targets) -> scalar loss tensor",
    "optimizer_factory": "a callable (params) -> torch.optim.Optimizer",
}


def from_mapping(data: Mapping[str, Any], *, check_names: Sequence[str] = ()) -> TrainingSpec:
    """Build a TrainingSpec from a plain dict; unknown keys are the user's own metadata and are ignored."""
    kwargs = {k: v for k, v in data.items() if k in _FIELDS}
    settings: dict[str, dict[str, Any]] = {}
    for key, value in data.get("settings", {}).items() if isinstance(data.get("settings"), Mapping) else ():
        if not isinstance(value, Mapping):
            raise UserError(f"spec: settings['{key}'] must be a dict of that check's settings, got {value!r}")
        settings[key.replace("_", "-")] = dict(value)
    for name in check_names:
        for key in (name, name.replace("-", "_")):
            if key in data and not isinstance(data[key], Mapping):
                raise UserError(f"spec: '{key}' must be a dict of that check's settings, got {data[key]!r}")
            if isinstance(data.get(key), Mapping):
                settings[name] = dict(data[key])
    return TrainingSpec(**kwargs, settings=settings)


def validate(spec: TrainingSpec, *, where: str) -> TrainingSpec:
    """Reject a spec the checks cannot use, with one line naming the field and the fix."""
    for name in _CALLABLE_FIELDS:
        value = getattr(spec, name)
        if value is not None and not callable(value):
            raise UserError(f"{where}: '{name}' must be callable, got {type(value).__name__}")
    required = ["batch", "loss_fn"]
    if spec.setup is None:
        required += ["model_factory", "optimizer_factory"]
    for name in required:
        if getattr(spec, name) is None:
            raise UserError(f"{where}: the spec has no '{name}'; add {_FIELD_HELP[name]}")
    batch = spec.batch
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise UserError(
            f"{where}: 'batch' must be a pair (inputs, targets), got "
            f"{type(batch).__name__}{'' if not isinstance(batch, (tuple, list)) else f' of length {len(batch)}'}"
        )
    if isinstance(spec.frozen, str):
        spec.frozen = (spec.frozen,)
    if not isinstance(spec.frozen, (list, tuple)) or not all(isinstance(p, str) for p in spec.frozen):
        raise UserError(f"{where}: 'frozen' must be a list of parameter names or glob patterns, got {spec.frozen!r}")
    for name in ("seed", "num_classes"):
        value = getattr(spec, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise UserError(f"{where}: '{name}' must be an integer, got {value!r}")
    if spec.device is not None and not isinstance(spec.device, str):
        raise UserError(f"{where}: 'device' must be a string such as 'cpu' or 'cuda', got {spec.device!r}")
    if not isinstance(spec.batch_dim, int) or isinstance(spec.batch_dim, bool) or spec.batch_dim < 0:
        raise UserError(f"{where}: 'batch_dim' must be a non-negative int, got {spec.batch_dim!r}")
    if spec.task not in (None, "classification", "regression", "other"):
        raise UserError(f"{where}: 'task' must be 'classification', 'regression' or 'other', got {spec.task!r}")
    return spec


_SPEC_FOLDERS: set[str] = set()


def _forget_other_spec_folders(folder: str) -> None:
    """Unload modules imported from earlier specs' folders, so this spec's `import model` gets its own model.py.

    Several specs in one process (the pytest plugin, the benchmark) would otherwise share the first one's siblings.
    """
    for other in _SPEC_FOLDERS - {folder}:
        prefix = other + os.sep
        for name, mod in list(sys.modules.items()):
            file = getattr(mod, "__file__", None) or ""
            if file.startswith(prefix) and not name.startswith("ci_checks"):
                del sys.modules[name]
        while other in sys.path:
            sys.path.remove(other)
    _SPEC_FOLDERS.intersection_update({folder})
    _SPEC_FOLDERS.add(folder)


def _import_file(path: str) -> types.ModuleType:
    abspath = os.path.abspath(path)
    name = "_ci_checks_spec_" + os.path.splitext(os.path.basename(abspath))[0].replace("-", "_")
    module_spec = importlib.util.spec_from_file_location(name, abspath)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"{path}: cannot be imported as Python; {SPEC_HELP}")
    module = importlib.util.module_from_spec(module_spec)
    # The spec's own imports ("from model import Net") resolve next to the file, as when run as a script.
    folder = os.path.dirname(abspath)
    _forget_other_spec_folders(folder)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def load_spec(ref: str, *, check_names: Sequence[str] = ()) -> TrainingSpec:
    """Resolve FILE.py:FUNC or package.module:FUNC, call it, and validate what it returns."""
    target, sep, func_name = ref.rpartition(":")
    if not sep or not target or not func_name:
        raise UserError(f"spec {ref!r} names no function; {SPEC_HELP}")
    is_file = target.endswith(".py") or os.sep in target or "/" in target
    try:
        if is_file:
            if not os.path.isfile(target):
                raise UserError(f"{target}: spec file not found; {SPEC_HELP} (paths are relative to {os.getcwd()})")
            module = _import_file(target)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(target)
    except UserError:
        raise
    except ModuleNotFoundError as e:
        if not is_file and e.name and target.startswith(e.name):
            raise UserError(f"{target}: module not found; {SPEC_HELP}") from e
        raise UserError(f"{target}: importing it failed: {type(e).__name__}: {e}; install what it needs") from e
    except Exception as e:
        raise UserError(f"{target}: importing it failed: {type(e).__name__}: {e} (rerun with --debug)") from e
    func = getattr(module, func_name, None)
    if func is None:
        names = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
        hint = f"; functions there: {', '.join(names[:8])}" if names else ""
        raise UserError(f"{target}: has no function '{func_name}'{hint}")
    if not callable(func):
        raise UserError(f"{target}: '{func_name}' is a {type(func).__name__}, not a function returning the spec")
    where = f"{target}:{func_name}"
    try:
        value = func()
    except Exception as e:
        raise UserError(f"{where}: the spec function raised {type(e).__name__}: {e} (rerun with --debug)") from e
    if isinstance(value, Mapping):
        spec = from_mapping(value, check_names=check_names)
    elif isinstance(value, TrainingSpec):
        spec = value
    else:
        raise UserError(f"{where}: must return a ci_checks.TrainingSpec or a dict, got {type(value).__name__}")
    if spec.location is None:
        spec.location = _location_of(func)
    return validate(spec, where=where)


def _location_of(obj: Any) -> Location | None:
    try:
        file = inspect.getsourcefile(obj)
        line = inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return None
    if file is None:
        return None
    rel = os.path.relpath(file)
    return Location(rel if not rel.startswith("..") else file, line)


def location_of(obj: Any) -> Location | None:
    """Where a user's function is defined, for annotations that point at the bug."""
    return _location_of(obj)


# ---------------------------------------------------------------- helpers for short specs


def synthetic_batch(
    input_shape: Sequence[int],
    *,
    batch_size: int = 16,
    num_classes: int | None = None,
    target_shape: Sequence[int] = (),
    vocab_size: int | None = None,
    seed: int = 0,
    batch_dim: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make one random batch: float inputs (or token ids below ``vocab_size``) and class ids or float targets.

    ``input_shape`` and ``target_shape`` exclude the batch axis, which is inserted at ``batch_dim``.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)

    def shape(rest: Sequence[int]) -> list[int]:
        dims = list(rest)
        dims.insert(min(batch_dim, len(dims)), batch_size)
        return dims

    if vocab_size is not None:
        inputs = torch.randint(0, vocab_size, shape(input_shape), generator=gen)
    else:
        inputs = torch.randn(shape(input_shape), generator=gen)
    if num_classes is not None:
        targets = torch.randint(0, num_classes, shape(target_shape), generator=gen)
    else:
        targets = torch.randn(shape(target_shape or (1,)), generator=gen)
    return inputs, targets


_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def load_from_script(path: str | os.PathLike[str], name: str) -> Any:
    """Load a class or function from a training script without running its main code.

    Only the script's imports, definitions and constant assignments are executed, so a script without an
    ``if __name__ == "__main__"`` guard does not start training.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read the training script ({e.strerror})") from None
    tree = ast.parse(source, filename=path)
    kept: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, _KEEP):
            kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_constant(node.value):
            kept.append(node)
    module = types.ModuleType(f"_ci_checks_script_{os.path.basename(path).removesuffix('.py')}")
    module.__file__ = os.path.abspath(path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        exec(compile(ast.Module(body=kept, type_ignores=[]), path, "exec"), module.__dict__)  # noqa: S102
    finally:
        sys.path.pop(0)
    if not hasattr(module, name):
        defined = [n.name for n in kept if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
        raise UserError(f"{path}: defines no '{name}' at top level; it defines: {', '.join(defined) or 'nothing'}")
    return getattr(module, name)


def _is_constant(node: ast.expr | None) -> bool:
    if node is None:
        return False
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True
