"""The training spec: how a user points ci-checks at their model, and helpers that keep specs short."""

from __future__ import annotations

import __future__
import ast
import contextlib
import dataclasses
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import random
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
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


class _SpecImports:
    """The modules each spec folder's files imported, so several specs in one process (the pytest plugin, in any
    order or split across xdist workers; the benchmark) each get their own siblings.

    While a spec file is imported and its function called, its folder comes first on sys.path, and a module name
    that another spec folder's file took (their `model.py` and ours) is bound to this folder's module: the one an
    earlier load of this folder imported, or a fresh import. Nothing is unloaded: the other folder's module object
    lives on (its spec's functions still use it) and is bound again when that spec loads again. Only folders the kit
    put on sys.path are taken off it again, never one the user or pytest put there.
    """

    def __init__(self) -> None:
        self.modules: dict[str, dict[str, types.ModuleType]] = {}  # folder -> {name: module} its files imported
        self.added: set[str] = set()  # folders the kit inserted into sys.path
        self.spec_folders: set[str] = set()  # folders specs were loaded from

    @staticmethod
    def _file_in(module: types.ModuleType, folder: str) -> bool:
        file = getattr(module, "__file__", None) or ""
        return bool(file) and os.path.abspath(file).startswith(folder + os.sep)

    @contextlib.contextmanager
    def of(self, folder: str) -> Iterator[None]:
        from ci_checks.engine.usercode import is_user_file

        folder = os.path.abspath(folder)
        self.spec_folders.add(folder)
        mine = self.modules.setdefault(folder, {})
        # Unbind the names this folder's files would import but that hold another folder's module (a spec loaded
        # earlier, or a test that imported its own model.py): they are kept, under their folder, for later.
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if (
                module is None
                or mine.get(name) is module
                or not self._shadowed(name, folder)
                or not is_user_file(file)
                or self._file_in(module, folder)
            ):
                continue
            self.modules.setdefault(_home(name, file), {}).setdefault(name, module)
            del sys.modules[name]
        for name, module in mine.items():
            sys.modules[name] = module
        for other in self.added - {folder}:
            while other in sys.path:
                sys.path.remove(other)
        self.added.intersection_update({folder})
        if not sys.path or sys.path[0] != folder:
            if folder not in sys.path:
                self.added.add(folder)
            sys.path.insert(0, folder)
        before = set(sys.modules)
        try:
            yield
        finally:
            for name in set(sys.modules) - before:
                new = sys.modules.get(name)
                if new is not None and self._file_in(new, folder) and not name.startswith("_ci_checks_"):
                    mine[name] = new

    @staticmethod
    def _shadowed(name: str, folder: str) -> bool:
        """Whether `import name` from a file in folder would find a module of folder itself."""
        top = os.path.join(folder, name.split(".")[0])
        return os.path.isfile(top + ".py") or os.path.isdir(top)


def _home(name: str, file: str) -> str:
    """The folder a module was imported from: model.py's folder, or the folder above package pkg/ for pkg.sub."""
    home = os.path.dirname(os.path.abspath(file))
    for _ in range(name.count(".") + (os.path.basename(file) == "__init__.py")):
        home = os.path.dirname(home)
    return home


_IMPORTS = _SpecImports()


def from_spec_folder(module: types.ModuleType) -> bool:
    """Whether a module is a spec file or one of its siblings (imported from the folder of a spec loaded here)."""
    name = getattr(module, "__name__", "") or ""
    return name.startswith("_ci_checks_") or any(_SpecImports._file_in(module, f) for f in _IMPORTS.spec_folders)


def _module_name(abspath: str, prefix: str) -> str:
    """A module name of its own for a file: ci_spec.py in two folders must not replace each other in sys.modules."""
    import hashlib

    stem = os.path.splitext(os.path.basename(abspath))[0]
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"{prefix}{safe}_{hashlib.sha1(abspath.encode()).hexdigest()[:8]}"


def _import_file(path: str) -> types.ModuleType:
    """Import a spec file under a name of its own (call inside _IMPORTS.of(its folder))."""
    abspath = os.path.abspath(path)
    name = _module_name(abspath, "_ci_checks_spec_")
    module_spec = importlib.util.spec_from_file_location(name, abspath)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"{path}: cannot be imported as Python; {SPEC_HELP}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _split_ref(ref: str) -> tuple[str, str, bool]:
    """FILE.py:FUNC or package.module:FUNC -> (target, function, is_file)."""
    target, sep, func_name = ref.rpartition(":")
    if not sep or not target or not func_name:
        raise UserError(f"spec {ref!r} names no function; {SPEC_HELP}")
    return target, func_name, target.endswith(".py") or os.sep in target or "/" in target


def _file_not_found(target: str) -> UserError:
    where = "" if os.path.isabs(target) else f" (paths are relative to {os.getcwd()})"
    return UserError(f"{target}: spec file not found; {SPEC_HELP}{where}")


def anchor_spec_ref(ref: str, base: str | os.PathLike[str]) -> str:
    """Make a spec reference mean the same from any working directory: relative to ``base``, not to the cwd.

    A relative FILE.py becomes an absolute path under ``base``; for package.module:FUNC, ``base`` goes on
    ``sys.path`` (as the working directory does for ``--spec``), so the module is found there.
    """
    target, func_name, is_file = _split_ref(ref)
    base = os.path.abspath(base)
    if is_file:
        if os.path.isabs(target) or base == os.getcwd():
            return ref
        return f"{os.path.normpath(os.path.join(base, target))}:{func_name}"
    if base not in sys.path:
        sys.path.insert(0, base)
    return ref


def check_spec_ref(ref: str) -> None:
    """Fail early, importing nothing, when the spec's file or module does not exist.

    The commands call this before they import torch, so a typo in --spec costs milliseconds, not an import.
    """
    target, _, is_file = _split_ref(ref)
    if is_file:
        if not os.path.isfile(target):
            raise _file_not_found(target)
    elif not _module_exists(target):
        raise UserError(f"{target}: module not found; {SPEC_HELP}")


def _module_exists(dotted: str) -> bool:
    """Whether package.module can be found, without running any package's __init__ (which may import torch).

    importlib.util.find_spec('a.b') imports 'a'; instead the top level is found as load_spec would find it (the
    working directory, then sys.path, then other finders such as editable installs' ones) and each submodule in
    its parent's folders. When in doubt, say it exists.
    """
    top, *rest = dotted.split(".")
    try:
        found = importlib.machinery.PathFinder.find_spec(top, [os.getcwd(), *sys.path]) or importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return True
    for part in rest:
        if found is None:
            break
        locations = found.submodule_search_locations
        if locations is None:
            return False  # a plain module has no submodules
        origin = found.origin or ""
        # A package that extends its own __path__ (pkgutil.extend_path) can hold submodules elsewhere.
        if origin.endswith("__init__.py") and "__path__" in _read(origin):
            return True
        found = importlib.machinery.PathFinder.find_spec(part, list(locations))
    return found is not None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _seed_before_spec(seed: int) -> None:
    """Seed torch, random and numpy, so a spec's unseeded torch.randn batch is the same in every process."""
    try:
        from ci_checks.engine.seeding import seed_everything
    except ImportError:  # no torch: the harness says so in its own words; seed what there is
        random.seed(seed)
        return
    seed_everything(seed)


def load_spec(ref: str, *, check_names: Sequence[str] = (), seed: int | None = 0) -> TrainingSpec:
    """Resolve FILE.py:FUNC or package.module:FUNC, call it, and validate what it returns.

    The function is called after seeding torch, random and numpy with ``seed`` (None: 0), the run's seed.
    """
    target, func_name, is_file = _split_ref(ref)
    if is_file and not os.path.isfile(target):
        raise _file_not_found(target)
    # The spec's own imports ("from model import Net"), at import and when its function runs, resolve next to it.
    with _IMPORTS.of(os.path.dirname(os.path.abspath(target))) if is_file else contextlib.nullcontext():
        return _load_spec(target, func_name, is_file, check_names=check_names, seed=seed)


def call_spec_function(ref: str, *, seed: int | None = 0) -> tuple[Any, Any, str]:
    """Call the function FILE.py:FUNC or package.module:FUNC names as load_spec does (its folder first on sys.path,
    seeded, failures as one line); return (what it returned, the function, FILE:FUNC). Other specs (quality) use it.
    """
    target, func_name, is_file = _split_ref(ref)
    if is_file and not os.path.isfile(target):
        raise _file_not_found(target)
    with _IMPORTS.of(os.path.dirname(os.path.abspath(target))) if is_file else contextlib.nullcontext():
        return _call_spec_function(target, func_name, is_file, seed=seed)


def _call_spec_function(target: str, func_name: str, is_file: bool, *, seed: int | None) -> tuple[Any, Any, str]:
    """Import the spec's file or module, call its function after seeding; return (value, function, FILE:FUNC)."""
    try:
        if is_file:
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
    except SystemExit as e:
        raise UserError(
            f"{target}: importing it called sys.exit({e.code!r}) - a script's main() runs at import; put it under "
            "if __name__ == '__main__': (or load the model with ci_checks.load_from_script)"
        ) from e
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
    _seed_before_spec(0 if seed is None else seed)
    try:
        value = func()
    except SystemExit as e:
        raise UserError(f"{where}: the spec function called sys.exit({e.code!r}); return the spec instead") from e
    except Exception as e:
        raise UserError(f"{where}: the spec function raised {type(e).__name__}: {e} (rerun with --debug)") from e
    return value, func, where


def _load_spec(
    target: str, func_name: str, is_file: bool, *, check_names: Sequence[str], seed: int | None
) -> TrainingSpec:
    value, func, where = _call_spec_function(target, func_name, is_file, seed=seed)
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


class MissingImport:
    """Stands in for a name a training script imports but this environment cannot; using it raises that error.

    A training script imports torchvision, wandb or its data code at the top even when the model class does not use
    them; ``load_from_script`` binds this in their place, so the class loads and only code that uses them fails,
    with one line naming the package and the script's line.
    """

    __slots__ = ("message", "module", "kind")

    def __init__(self, message: str, *, module: str | None = None, kind: type[Exception] = ImportError) -> None:
        self.message = message
        self.module = module
        self.kind = kind

    def error(self) -> Exception:
        if issubclass(self.kind, ImportError):
            return self.kind(self.message, name=self.module)
        return self.kind(self.message)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):  # introspection (copy, inspect.unwrap) is not a use
            raise AttributeError(attr)
        raise self.error()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error()

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        raise self.error()  # class Net(LightningModule) with lightning missing

    def __getitem__(self, key: Any) -> Any:
        raise self.error()

    def __iter__(self) -> Any:
        raise self.error()

    def __instancecheck__(self, instance: Any) -> bool:
        raise self.error()

    def __repr__(self) -> str:
        return f"<missing import: {self.message}>"


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def load_from_script(path: str | os.PathLike[str], name: str) -> Any:
    """Load a class or function from a training script without running its main code.

    Only the script's imports, definitions, constant assignments and ``try: import ... except ImportError:``
    blocks are executed, one statement at a time, so a script without an ``if __name__ == "__main__"`` guard does
    not start training. An import that fails (torchvision or wandb not installed here) binds a ``MissingImport``
    that raises ImportError, naming the package and the line, only where it is used; so does a definition that
    fails, and asking for that one raises its error at once.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read the training script ({e.strerror})") from None
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise UserError(f"{path}:{e.lineno}: the training script is not valid Python ({e.msg})") from None
    kept = _kept_statements(tree)
    module = types.ModuleType(_module_name(os.path.abspath(path), "_ci_checks_script_"))
    module.__file__ = os.path.abspath(path)
    # Registered, as an import would be: dataclasses and pickle look classes' modules up in sys.modules.
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    # Statements run one by one, so the script's `from __future__` imports are passed on as flags; annotations stay
    # unevaluated (as they always did here), so a type hint naming a package missing here costs no definition.
    flags = __future__.annotations.compiler_flag
    try:
        for node in kept:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                feature = getattr(__future__, node.names[0].name, None)  # an unknown one fails as a SyntaxError
                flags |= feature.compiler_flag if feature is not None else 0
            module_ast = ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[]))
            code = compile(module_ast, path, "exec", flags=flags, dont_inherit=True)
            try:
                exec(code, namespace)  # noqa: S102 - the point: run the script's definitions
            except Exception as e:  # noqa: BLE001 - one bad statement must not cost the others
                _bind_failure(namespace, node, e, path)
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    if name not in namespace or name.startswith("__"):
        defined = [n.name for n in kept if isinstance(n, _DEFINITIONS)]
        raise UserError(f"{path}: defines no '{name}' at top level; it defines: {', '.join(defined) or 'nothing'}")
    value = namespace[name]
    if isinstance(value, MissingImport):
        raise value.error()
    return value


def _kept_statements(tree: ast.Module) -> list[ast.stmt]:
    """The statements load_from_script runs; an import of several names becomes one statement per name."""
    kept: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            kept += [ast.copy_location(ast.Import(names=[alias]), node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            kept += [
                ast.copy_location(ast.ImportFrom(module=node.module, names=[alias], level=node.level), node)
                for alias in node.names
            ]
        elif isinstance(node, _DEFINITIONS):
            kept.append(node)
        elif isinstance(node, ast.Try) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in node.body):
            kept.append(node)  # try: import wandb / except ImportError: wandb = None
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_constant(node.value):
            kept.append(node)
    return kept


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.asname or a.name for a in node.names if a.name != "*"]
    if isinstance(node, ast.Try):
        return [name for n in node.body for name in _bound_names(n)]
    if isinstance(node, _DEFINITIONS):
        return [node.name]
    return []


def _bind_failure(namespace: dict[str, Any], node: ast.stmt, error: Exception, path: str) -> None:
    """Bind a MissingImport for each name the failed statement would have bound, unless one is already bound."""
    if isinstance(node, _DEFINITIONS):
        if isinstance(error, ImportError):
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            missing = MissingImport(first, module=error.name, kind=type(error))
        else:
            hint = ""
            if isinstance(error, NameError):
                hint = " (load_from_script runs only the script's imports, definitions and constant assignments)"
            missing = MissingImport(
                f"{path}:{node.lineno}: defining '{node.name}' raised {type(error).__name__}: {error}{hint}",
                kind=UserError,
            )
    elif isinstance(node, (ast.Import, ast.ImportFrom, ast.Try)):
        line = _import_line(node, error)
        if isinstance(error, ModuleNotFoundError) and error.name:
            missing = MissingImport(
                f"{error.name} is not installed; {path} imports it at line {line}",
                module=error.name,
                kind=ModuleNotFoundError,
            )
        else:
            first = (str(error).strip().splitlines() or [""])[0]
            module = getattr(error, "name", None) or _imported_module(node)
            missing = MissingImport(
                f"importing {module} failed ({type(error).__name__}: {first}); {path} imports it at line {line}",
                module=module,
            )
    else:
        raise error
    for name in _bound_names(node):
        if not isinstance(namespace.get(name, missing), MissingImport):
            continue  # `import a.missing` after `import a`: keep the working `a`
        namespace[name] = missing


def _imported_module(node: ast.stmt) -> str:
    if isinstance(node, ast.Import):
        return node.names[0].name
    if isinstance(node, ast.ImportFrom):
        return "." * node.level + (node.module or "")
    if isinstance(node, ast.Try) and node.body:
        return _imported_module(node.body[0])
    return "?"


def _import_line(node: ast.stmt, error: Exception) -> int:
    """The line of the import that failed: in a try block, the one importing the missing module."""
    if isinstance(node, ast.Try):
        wanted = (getattr(error, "name", None) or "").split(".")[0]
        for inner in node.body:
            if wanted and _imported_module(inner).split(".")[0] == wanted:
                return inner.lineno
        return node.body[0].lineno
    return node.lineno


def _is_constant(node: ast.expr | None) -> bool:
    if node is None:
        return False
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True
