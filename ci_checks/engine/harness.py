"""The engine behind the training checks: builds the user's objects, trains through their step, observes it.

One instrumented run is shared by the checks of a suite (memorization, loss decrease, finite values,
parameter updates, train mode, checkpoint), so `train-check` trains once rather than once per check.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import math
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ci_checks.engine import tree as _tree
from ci_checks.engine.observer import Observer, plain_tensors
from ci_checks.engine.seeding import rng_state, seed_everything, set_rng_state
from ci_checks._errors import UserError
from ci_checks.engine.step_limit import StepTimeout, StepWatch  # noqa: F401 - StepTimeout: the harness's API
from ci_checks.engine.usercode import UserCodeError, call_user
from ci_checks.spec import TrainingSpec, location_of

# The seeds torch, numpy and random all accept (numpy's legacy seeding stops at 2**32 - 1).
MIN_SEED, MAX_SEED = 0, 2**32 - 1

# The eval-mode fit (an extra forward) when the step's own outputs give none (dropout): at every step up to
# EVAL_EVERY_STEP_UNTIL, then at every EVAL_EVERY-th. When they give one but the model's outputs depend on its mode
# (BatchNorm, functional dropout), at every EVAL_EVERY_WITH_FIT-th step; when they do not, never.
EVAL_EVERY_STEP_UNTIL = 3
EVAL_EVERY = 3
EVAL_EVERY_WITH_FIT = 5
# Outputs, gradients and parameters are checked for NaN/Inf at every step up to this one, then at every FINITE_EVERY-th
# step and the last (the loss at every step).
FINITE_EVERY_STEP_UNTIL = 10
FINITE_EVERY = 3

# The kit's own checkpoint (model and optimizer state) stays in memory up to this size, and goes to a temporary file
# beyond it: a smoke test's model is small, and a file costs a write and a read.
IN_MEMORY_CHECKPOINT_BYTES = 256 * 2**20

MODE_DEPENDENT = (
    torch.nn.modules.dropout._DropoutNd,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


@dataclass
class Task:
    """What the batch's targets say about the task, so fit can be judged by accuracy or R^2."""

    kind: str  # classification | binary | regression | other
    num_classes: int | None = None
    class_dim: int | None = None

    def describe(self) -> str:
        if self.kind == "classification":
            return f"classification, {self.num_classes} classes"
        return self.kind


@dataclass
class Run:
    """What one instrumented training run observed."""

    losses: list[float] = field(default_factory=list)
    fits: list[float | None] = field(default_factory=list)
    steps_to_memorize: int | None = None
    stop_reason: str = ""
    error: UserCodeError | None = None
    seconds: float = 0.0
    nonfinite: tuple[int, str] | None = None
    finite_until: int = 0  # the last step after which every output, gradient and parameter was checked finite
    stale_grad: tuple[int, str] | None = None
    grad_norms: dict[str, float] = field(default_factory=dict)  # after step 1
    changes: dict[str, float] = field(default_factory=dict)  # max abs change per parameter in step 1
    root_modes: list[bool] = field(default_factory=list)
    forward_calls: list[int] = field(default_factory=list)
    output_grad_steps: set[int] = field(default_factory=set)  # steps whose backward reached the model's output
    optimizer_ids: set[int] = field(default_factory=set)
    stale_optimizer_params: int = 0
    lr_by_param: dict[str, float | None] = field(default_factory=dict)
    in_optimizer: dict[str, bool] = field(default_factory=dict)
    requires_grad: dict[str, bool] = field(default_factory=dict)
    bn_updated: dict[str, bool] = field(default_factory=dict)
    mode_dependent: list[str] = field(default_factory=list)
    plain_tensors: dict[str, bool] = field(default_factory=dict)  # name -> changed during training
    state_at: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    rng_at: dict[int, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None  # the checkpoint written to disk (the user's save_checkpoint, or a large one)
    checkpoint_bytes: io.BytesIO | None = None  # the kit's own checkpoint, kept in memory when small
    checkpoint_error: UserCodeError | None = None
    first_outputs: Any = None  # the model's outputs in step 1 (first forward, detached), as the user's step saw them
    optimizer: str = ""  # the optimizer's class name
    lrs: list[float | None] = field(default_factory=list)  # the largest learning rate of the optimizer after each step
    best_step: int = 0  # the last step at which the fit or the loss improved (see Progress)
    params_changed_at: int | None = None  # the first step after which some parameter differed from its initial value
    cleared_before_update: list[str] = field(default_factory=list)  # step 1: had a gradient, gone at optimizer.step


class Progress:
    """Whether a step improved on the best fit or the best loss so far: the run's measure of progress.

    A fit (accuracy, R^2) improves by any increase; the loss by a thousandth of its first value. A run whose best
    step is `patience` steps back has stalled. Steps, not seconds: the same run stalls at the same step on any
    machine.
    """

    def __init__(self, use_fit: bool) -> None:
        self.use_fit = use_fit
        self.best_fit: float | None = None
        self.best_loss = math.inf
        self.scale: float | None = None

    def update(self, loss: float, fit: float | None) -> bool:
        improved = False
        if self.use_fit and fit is not None and math.isfinite(fit):
            if self.best_fit is None or fit > self.best_fit + 1e-6:
                improved = True
                self.best_fit = fit
        if math.isfinite(loss):
            if self.scale is None:
                self.scale = max(abs(loss), 1e-8)
            if loss < self.best_loss - 1e-3 * self.scale:
                self.best_loss = loss
                improved = True
        return improved


def _max_lr(optimizer: torch.optim.Optimizer) -> float | None:
    lrs = [g.get("lr") for g in optimizer.param_groups]
    values = [float(v) for v in lrs if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)]
    return max(values) if values else None


def _nbytes(state: Any) -> int:
    """The bytes of the tensors in a (nested) state dict."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_nbytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_nbytes(v) for v in state)
    return 0


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@contextmanager
def probe_mode(model: torch.nn.Module, training: bool = False) -> Iterator[None]:
    """Run the kit's own probe in a mode, then give every submodule back the mode it had."""
    modes = [(m, m.training) for m in model.modules()]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        model.train(training)
        try:
            yield
        finally:
            for m, was in modes:
                m.training = was


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)


def matches(name: str, patterns: Any) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or name == p or name.startswith(p + ".") for p in patterns)


class Harness:
    """Build, train and probe the objects a TrainingSpec describes."""

    def __init__(self, spec: TrainingSpec, *, device: str | None = None, seed: int | None = None) -> None:
        self.spec = spec
        wanted = device or spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.device = torch.device(wanted)
        except (RuntimeError, TypeError):
            raise UserError(f"device {wanted!r} is not a torch device; use cpu, cuda or cuda:N") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"device {wanted!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
        if self.device.type not in ("cpu", "cuda", "mps", "xpu"):
            raise UserError(f"device {wanted!r} cannot run training; use cpu or cuda")
        self.seed = spec.seed if seed is None else seed
        if not MIN_SEED <= self.seed <= MAX_SEED:
            raise UserError(
                f"seed {self.seed} is out of range; use an integer from {MIN_SEED} to {MAX_SEED} (2**32 - 1)"
            )
        meta = [path for path, t in _tree.leaves(spec.batch) if t.is_meta]
        if meta:
            raise UserError(
                f"the spec's batch holds meta tensors ({', '.join(meta[:3])}), which have a shape but no values; "
                "build the batch with real data (e.g. torch.randn, or ci_checks.synthetic_batch)"
            )
        self.batch = _tree.map_tree(spec.batch, lambda t: t.to(self.device))
        self.inputs, self.targets = self.batch
        self.step_location = location_of(spec.train_step) if spec.train_step else None
        self._task: Task | None = None
        self.init_loss: float | None = None
        self.init_prediction: torch.Tensor | None = None
        self._preflown = False
        self.steps_taken = 0  # training steps taken by every run and check of this harness
        self.mode_dependent = True  # the model's outputs differ between train and eval mode (see preflight)
        self._targets_on: dict[torch.device, tuple[torch.Tensor, int]] = {}
        self._runs: dict[tuple[Any, ...], Run] = {}
        # Where progress goes while a step runs long (the session's progress line); None: nowhere.
        self.heartbeat: Callable[[str], None] | None = None
        self._watch = StepWatch(self)
        # Checkpoints the harness wrote: removed when it is collected or the process exits (Ctrl-C included).
        self._temp_files: list[str] = []
        weakref.finalize(self, _remove_files, self._temp_files)

    # ------------------------------------------------------------ building and stepping

    def build(self, seed: int | None = None) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """Fresh model and optimizer from the spec; what the user's factories raise is a finding (UserCodeError)."""
        seed_everything(self.seed if seed is None else seed)
        spec = self.spec
        if spec.setup is not None:
            built = call_user("setup()", spec.setup)
            if not isinstance(built, (tuple, list)) or len(built) != 2:
                raise UserError(f"setup() must return (model, optimizer), got {type(built).__name__}")
            model, optimizer = built
            if isinstance(model, torch.nn.Module):
                model.to(self.device)  # in place: the optimizer built over its parameters still holds them
        else:
            assert spec.model_factory is not None and spec.optimizer_factory is not None
            model = call_user("model_factory()", spec.model_factory)
            if not isinstance(model, torch.nn.Module):
                raise UserError(f"model_factory() must return a torch.nn.Module, got {type(model).__name__}")
            model = model.to(self.device)
            optimizer = call_user("optimizer_factory(params)", spec.optimizer_factory, model.parameters())
        if not isinstance(model, torch.nn.Module):
            raise UserError(f"setup() must return a torch.nn.Module first, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise UserError(
                f"the optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                "optimizer_factory(params) should return e.g. torch.optim.Adam(params, lr=1e-3)"
            )
        return model, optimizer

    def forward(self, model: torch.nn.Module, inputs: Any = None) -> Any:
        inputs = self.inputs if inputs is None else inputs
        if self.spec.forward is not None:
            return self.spec.forward(model, inputs)
        if isinstance(inputs, dict):
            return model(**inputs)
        if isinstance(inputs, (tuple, list)):
            return model(*inputs)
        return model(inputs)

    def prediction(self, outputs: Any) -> torch.Tensor | None:
        if self.spec.prediction is not None:
            pred = self.spec.prediction(outputs)
            return pred if isinstance(pred, torch.Tensor) else None
        return _tree.find_prediction(outputs)

    def loss_of(self, outputs: Any) -> torch.Tensor:
        assert self.spec.loss_fn is not None
        loss: torch.Tensor = self.spec.loss_fn(outputs, self.targets)
        return loss

    def step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int | None = None) -> float:
        """One training step: the user's own when given, else zero_grad/forward/backward/step.

        Whatever the user's code raises (or a sys.exit() in it) comes out as a UserCodeError naming the step; a step
        that runs past the per-step time limit is stopped and comes out as a StepTimeout (see StepWatch).
        """
        self.steps_taken += 1
        with self._watch.step(step):
            if self.spec.train_step is not None:
                loss = call_user(
                    "the training step",
                    self.spec.train_step,
                    model,
                    self.batch,
                    self.spec.loss_fn,
                    optimizer,
                    step=step,
                )
            else:
                loss = call_user("the training step (model, loss_fn)", self._default_step, model, optimizer, step=step)
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise UserError(f"train_step returned a tensor of shape {list(loss.shape)}; return the scalar loss")
            return float(loss.detach().float().cpu())
        if isinstance(loss, (int, float)):
            return float(loss)
        raise UserError(f"train_step must return the loss (a scalar tensor or float), got {type(loss).__name__}")

    def _default_step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss_of(self.forward(model))
        loss.backward()
        optimizer.step()
        return loss

    # ------------------------------------------------------------ preflight

    def preflight(self) -> None:
        """Build once and run the kit's forward and loss.

        A spec the kit cannot use (an empty batch, a loss that is not a scalar) is bad input (UserError, exit 2);
        an exception raised by the user's model or loss is a finding about that code (UserCodeError, exit 1).
        """
        if self._preflown:
            return
        size = _tree.batch_size(self.inputs, self.spec.batch_dim)
        if size == 0:
            raise UserError(
                f"the spec's batch is empty (size 0 along batch_dim={self.spec.batch_dim}); give a few samples"
            )
        if size is None:
            shapes = [list(t.shape) for _, t in _tree.leaves(self.inputs)][:3]
            raise UserError(
                f"batch_dim={self.spec.batch_dim}, but no input tensor of the spec's batch has that axis "
                + (f"(shapes {shapes})" if shapes else "(the inputs hold no tensors)")
                + "; set batch_dim to the axis that indexes samples (0 for (batch, ...), 1 for (time, batch, ...))"
            )
        model, _ = self.build()
        outputs = call_user("the model's forward on the spec's batch", self.forward, model)
        pred = call_user("prediction(outputs)", self.prediction, outputs)
        self.init_prediction = None if pred is None else pred.detach()
        self.mode_dependent = self._depends_on_mode(model, self.init_prediction)
        try:
            loss = call_user("loss_fn(outputs, targets)", self.loss_of, outputs)
        except UserCodeError:
            if self.spec.train_step is None:
                raise
            # The user's step may never call loss_fn on the whole batch (it masks padded rows, samples a part):
            # the kit's call was a probe. The first loss comes from the step instead (see run()).
            self._preflown = True
            return
        if not isinstance(loss, torch.Tensor):
            raise UserError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
        if loss.numel() != 1:
            raise UserError(
                f"loss_fn returned a tensor of shape {list(loss.shape)}, not a scalar; reduce it "
                "(e.g. .mean(), or reduction='mean')"
            )
        if not loss.is_floating_point():
            raise UserError(f"loss_fn returned a {loss.dtype} tensor; the loss must be floating point")
        self.init_loss = float(loss.detach().float().cpu())
        self._preflown = True

    def _depends_on_mode(self, model: torch.nn.Module, train_pred: torch.Tensor | None) -> bool:
        """Whether the model's prediction differs between training and eval mode on the same weights (BatchNorm,
        dropout, functional dropout behind `self.training`): only then can an eval-mode fit tell more than the
        step's own outputs. Anything the eval path raises counts as "depends" (batch-independence reports it)."""
        if train_pred is None:
            return True
        try:
            with probe_mode(model, training=False), torch.no_grad():
                pred = call_user("the model in eval mode", lambda: self.prediction(self.forward(model)))
            return not (
                isinstance(pred, torch.Tensor)
                and pred.shape == train_pred.shape
                and bool(torch.allclose(pred.float(), train_pred.float(), rtol=1e-5, atol=1e-6, equal_nan=True))
            )
        except Exception:  # noqa: BLE001 - a probe: the user's eval path is judged by the checks, not here
            return True

    # ------------------------------------------------------------ task and fit

    @property
    def task(self) -> Task:
        if self._task is None:
            self.preflight()
            self._task = self._detect_task(self.init_prediction)
        return self._task

    def _detect_task(self, pred: torch.Tensor | None) -> Task:
        targets = self.targets
        wanted = self.spec.task
        if pred is None or pred.dim() == 0 or not isinstance(targets, torch.Tensor) or wanted == "other":
            return Task("other")
        if targets.is_complex() or targets.dtype == torch.bool:
            return Task("other")
        if not targets.is_floating_point() and wanted != "regression":
            for dim in dict.fromkeys((1 if pred.dim() > 1 else -1, pred.dim() - 1)):
                c = int(pred.shape[dim])
                if c > 1 and pred.numel() // c == targets.numel():
                    return Task("classification", self.spec.num_classes or c, dim)
        if pred.numel() == targets.numel() and targets.numel() > 0:
            values = targets.unique()
            binary = values.numel() <= 2 and bool(((values == 0) | (values == 1)).all())
            if binary and wanted != "regression":
                return Task("binary")
            return Task("regression")  # float targets, or integer targets that are not class ids (counts, ratings)
        return Task("other")

    def fit(self, pred: torch.Tensor | None) -> float | None:
        """How well predictions fit the batch's targets: accuracy, or R^2 for regression; None if unknown.

        Targets below zero (ignore_index -100 or -1, padding) are left out. A prediction for part of the batch
        (a step that samples rows, drops padded ones, or splits micro-batches) cannot be matched to the targets:
        None, and the run judges the fit in eval mode on the whole batch instead.
        """
        task = self.task
        if pred is None or task.kind == "other" or not isinstance(self.targets, torch.Tensor):
            return None
        targets = self.targets
        try:
            if task.kind == "classification":
                assert task.class_dim is not None
                if (
                    pred.dim() <= task.class_dim
                    or pred.numel() // max(pred.shape[task.class_dim], 1) != targets.numel()
                ):
                    return None
                t, kept = self._class_targets(pred.device)
                if not kept:
                    return None
                # Ignored targets are negative and argmax never is, so they never count as hits: three kernels a
                # step, where masking would take eight.
                hits = pred.detach().movedim(task.class_dim, -1).reshape(-1, pred.shape[task.class_dim]).argmax(-1)
                return int((hits == t).sum()) / kept
            pred = pred.detach().float()
            if pred.numel() != targets.numel():
                return None
            if task.kind == "binary":
                p = pred.reshape(-1)
                t = targets.reshape(-1).float().to(p.device)
                keep = t >= 0
                if not bool(keep.any()):
                    return None
                outside = bool(((p < 0) | (p > 1)).any())
                threshold = 0.0 if outside else 0.5
                return float(((p[keep] > threshold).float() == t[keep]).float().mean())
            t = targets.reshape(-1).float().to(pred.device)
            p = pred.reshape(-1)
            var = float(((t - t.mean()) ** 2).sum())
            if var == 0.0:
                return None
            return 1.0 - float(((p - t) ** 2).sum()) / var
        except (RuntimeError, IndexError, ValueError):
            return None

    def _class_targets(self, device: torch.device) -> tuple[torch.Tensor, int]:
        """The class targets flattened on `device`, and how many are not ignored (>= 0); computed once."""
        cached = self._targets_on.get(device)
        if cached is None:
            t = self.targets.reshape(-1).to(device)
            cached = self._targets_on[device] = (t, int((t >= 0).sum()))
        return cached

    def eval_fit(self, model: torch.nn.Module) -> float | None:
        with probe_mode(model, training=False), torch.no_grad():
            return self.fit(self.prediction(self.forward(model)))

    # ------------------------------------------------------------ the instrumented run

    def run(
        self,
        *,
        max_steps: int,
        min_steps: int = 0,
        max_seconds: float = math.inf,
        done: Callable[[float, float | None], bool] | None = None,
        checkpoint_step: int | None = None,
        keep_states: tuple[int, ...] = (),
        patience: int | None = None,
        progress: Callable[[int, float, float | None], None] | None = None,
    ) -> Run:
        """Train one freshly built model through the user's step, with hooks that watch everything.

        The run ends when `done` holds (after min_steps), when nothing moved in min_steps steps, when the loss went
        non-finite, when neither the fit nor the loss improved for `patience` steps (stalled), at max_steps, or at
        the wall-clock safety cap max_seconds. Every verdict but the last depends on steps only.
        """
        key = (max_steps, min_steps, max_seconds, checkpoint_step, keep_states, patience)
        if key in self._runs:
            return self._runs[key]
        self.preflight()
        run = Run()
        try:
            model, optimizer = self.build()
        except UserCodeError as e:  # built fine in preflight, raised now: a finding like a step that raises
            run.error, run.stop_reason = e, "error"
            self._runs[key] = run
            return run
        run.optimizer_ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
        run.optimizer = type(optimizer).__name__
        named = dict(model.named_parameters())
        model_ids = {id(p) for p in named.values()}
        run.stale_optimizer_params = len(run.optimizer_ids - model_ids)
        lr_of: dict[int, float | None] = {}
        for g in optimizer.param_groups:
            for p in g["params"]:
                lr = g.get("lr")
                lr_of[id(p)] = float(lr) if isinstance(lr, (int, float)) else None
        run.lr_by_param = {n: lr_of.get(id(p)) for n, p in named.items()}
        run.in_optimizer = {n: id(p) in run.optimizer_ids for n, p in named.items()}
        run.requires_grad = {n: p.requires_grad for n, p in named.items()}
        run.mode_dependent = [
            f"{type(m).__name__} {n or 'model'}" for n, m in model.named_modules() if isinstance(m, MODE_DEPENDENT)
        ]
        state = Observer(run, model, named)
        state.watch_optimizer(optimizer)
        has_dropout = any(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in model.modules())
        before = {n: p.detach().clone() for n, p in named.items()}
        bn_before = {
            n: m.running_mean.detach().clone()
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
        }
        plain_before = {k: v.detach().clone() for k, v in plain_tensors(model)}
        progress_of = Progress(self.task.kind != "other")
        start = time.perf_counter()
        try:
            with self._watch.steady():  # the step alarm's handler installed once for the run
                for step in range(1, max_steps + 1):
                    state.begin_step(step)
                    try:
                        loss = self.step(model, optimizer, step)
                    except UserCodeError as e:
                        run.error = e
                        run.stop_reason = "error"
                        break
                    finally:
                        state.end_step()
                    if step == 1 and state.outputs:
                        run.first_outputs = _tree.map_tree(state.outputs[0], lambda t: t.detach())
                    run.losses.append(loss)
                    if step == 1 and self.init_loss is None:
                        self.init_loss = loss  # loss_fn could not run on the whole batch: the step's own first loss
                    run.lrs.append(_max_lr(optimizer))
                    # Every tensor at each of the first steps, then on a schedule (a NaN in a parameter stays);
                    # the loss at every step, and every tensor at once when it is not finite.
                    if step <= FINITE_EVERY_STEP_UNTIL or step % FINITE_EVERY == 0 or not math.isfinite(loss):
                        state.check_finite(loss)
                    if step == 1:
                        run.changes = {
                            n: float((p.detach() - before[n]).abs().max()) if p.numel() else 0.0
                            for n, p in named.items()
                        }
                        run.grad_norms = dict(state.grad_norms)
                        for n, m in model.named_modules():
                            if n in bn_before and m.running_mean is not None:
                                run.bn_updated[n] = not torch.equal(m.running_mean, bn_before[n])
                    if run.params_changed_at is None and any(not torch.equal(p, before[n]) for n, p in named.items()):
                        run.params_changed_at = step
                    # Train-mode outputs judge the fit only without dropout: its noise can break a tie the model
                    # cannot (BatchNorm is why they are used at all: eval mode lags behind its running statistics).
                    # The eval-mode forward is an extra pass, so it runs on a schedule, and only where it can tell
                    # more than the step's own outputs: dropout, a mode-dependent layer, or no usable train-mode fit.
                    try:
                        fit = (
                            None if has_dropout else call_user("prediction(outputs)", state.train_fit, self, step=step)
                        )
                        if self.task.kind != "other" and (
                            (fit is None and (step <= EVAL_EVERY_STEP_UNTIL or step % EVAL_EVERY == 0))
                            or (fit is not None and self.mode_dependent and step % EVAL_EVERY_WITH_FIT == 0)
                            or step == max_steps
                        ):
                            eval_fit = call_user("the model in eval mode", self.eval_fit, model, step=step)
                            if eval_fit is not None and (fit is None or eval_fit > fit):
                                fit = eval_fit
                    except UserCodeError as e:  # the model's eval path or prediction() raised: a finding like a step's
                        run.error = e
                        run.stop_reason = "error"
                        break
                    run.fits.append(fit)
                    if progress_of.update(loss, fit):
                        run.best_step = step
                    if step in keep_states:
                        run.state_at[step] = _clone_state(model)
                    if checkpoint_step == step:
                        self._save(model, optimizer, run, step)
                    if progress is not None:
                        progress(step, loss, fit)
                    if run.steps_to_memorize is None and done is not None and done(loss, fit):
                        run.steps_to_memorize = step
                    if run.steps_to_memorize is not None and step >= min_steps:
                        run.stop_reason = "memorized"
                        break
                    if step >= min_steps and not math.isfinite(loss):
                        run.stop_reason = "non-finite loss"
                        break
                    if step == min_steps and run.params_changed_at is None:
                        run.stop_reason = "no parameter changes"  # nothing moved in min_steps steps: more will not help
                        break
                    if patience is not None and step >= min_steps and step - run.best_step >= patience:
                        run.stop_reason = "stalled"
                        break
                    if time.perf_counter() - start > max_seconds and step >= min_steps:
                        run.stop_reason = "time budget"
                        break
                else:
                    run.stop_reason = "step budget"
            if run.losses and run.finite_until < len(run.losses) and run.error is None:
                state.check_finite(run.losses[-1])  # the last step, when the schedule skipped it
        finally:
            state.close()
        run.seconds = time.perf_counter() - start
        run.plain_tensors = {
            k: not (v.shape == plain_before[k].shape and torch.equal(v, plain_before[k]))
            for k, v in plain_tensors(model)
            if k in plain_before
        }
        self._runs[key] = run
        return run

    def _save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, run: Run, step: int) -> None:
        """The checkpoint: the user's save_checkpoint writes a file; the kit's own goes to memory when small."""
        if step not in run.state_at:  # kept already when a check asked for the state at this step
            run.state_at[step] = _clone_state(model)
        run.rng_at[step] = rng_state()
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        if self.spec.save_checkpoint is None and _nbytes(state) <= IN_MEMORY_CHECKPOINT_BYTES:
            buffer = io.BytesIO()
            torch.save(state, buffer)  # serialized as on disk, so what torch.save cannot hold still fails
            run.checkpoint_bytes = buffer
            set_rng_state(run.rng_at[step])
            return
        fd, path = tempfile.mkstemp(prefix="ci-checks-ckpt-", suffix=".pt")
        os.close(fd)
        self._temp_files.append(path)
        run.checkpoint_path = path
        try:
            if self.spec.save_checkpoint is not None:
                call_user("save_checkpoint", self.spec.save_checkpoint, model, optimizer, path)
            else:
                torch.save(state, path)
        except UserCodeError as e:  # reported by the checkpoint check
            run.checkpoint_error = e
        set_rng_state(run.rng_at[step])

    def resume(
        self, run: Run, step: int, steps: int
    ) -> tuple[list[float], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Build fresh objects, load the run's checkpoint, continue: return losses and states (loaded, final)."""
        assert run.checkpoint_path is not None or run.checkpoint_bytes is not None
        model, optimizer = self.build(seed=self.seed + 1)
        if self.spec.load_checkpoint is not None:
            call_user("load_checkpoint", self.spec.load_checkpoint, model, optimizer, run.checkpoint_path)
        else:
            source: io.BytesIO | str | None = run.checkpoint_path
            if run.checkpoint_bytes is not None:
                source = run.checkpoint_bytes
                source.seek(0)
            assert source is not None
            ckpt = torch.load(source, map_location=self.device, weights_only=False)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        loaded = _clone_state(model)
        set_rng_state(run.rng_at[step])
        losses = []
        for i in range(steps):
            losses.append(self.step(model, optimizer, step + i + 1))
        return losses, loaded, _clone_state(model)
