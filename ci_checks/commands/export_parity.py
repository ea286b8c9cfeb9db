"""export-parity: export the spec's model to ONNX, run it in onnxruntime, and compare with PyTorch in eval mode."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ci_checks import _io
from ci_checks._errors import UserError
from ci_checks.commands import add_config_option, add_results_options, add_spec_option, emit_results
from ci_checks.commands import project_config, spec_ref
from ci_checks.results import CheckResult, Report

if TYPE_CHECKING:
    import torch

    from ci_checks.engine.harness import Harness

HELP = "export the model to ONNX, run it in onnxruntime, compare outputs and latency with PyTorch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_option(parser)
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="state_dict (or a checkpoint with a 'model' entry) to load "
        "before export (default: the freshly built, seeded model)",
    )
    parser.add_argument(
        "--inputs",
        metavar="FILE.pt",
        action="append",
        default=[],
        help="golden inputs saved with torch.save (a tensor, tuple or dict), repeatable",
    )
    parser.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance (default: %(default)s)")
    parser.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance (default: %(default)s)")
    parser.add_argument(
        "--exporter",
        choices=("torchscript", "dynamo"),
        default="torchscript",
        help="torch.onnx exporter (default: %(default)s, the fast one; dynamo uses torch.export)",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--keep", metavar="FILE.onnx", help="keep the exported model here (default: a temp file)")
    add_results_options(parser)
    add_config_option(parser)
    parser.add_argument("--device", help="torch device for the eager reference (default: cpu)")


def run(args: argparse.Namespace) -> int:
    import math

    config, path = project_config(args)
    spec = spec_ref(args, config, path)
    for option, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        if not 0 <= value < math.inf:
            raise UserError(f"{option} must be a finite number at least 0, got {value:g}")
    if args.opset is not None and args.opset < 7:
        raise UserError(f"--opset must be an ONNX opset of at least 7, got {args.opset}")
    report = export_parity(
        spec,
        weights=args.weights,
        golden=args.inputs,
        atol=args.atol,
        rtol=args.rtol,
        exporter=args.exporter,
        opset=args.opset,
        keep=args.keep,
    )
    return emit_results(report, args, config)


def _import_runtime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise UserError("export-parity needs onnx and onnxruntime: pip install 'ci-checks[onnx]'") from None
    return onnxruntime


def serving_model(spec_ref: Any, weights: str | None) -> tuple[Harness, torch.nn.Module]:
    """The spec's model as it would be served: built on CPU with the spec's seed, weights loaded, in eval mode."""
    from ci_checks.engine.harness import Harness
    from ci_checks.checks import names
    from ci_checks.spec import load_spec

    spec = load_spec(spec_ref, check_names=names()) if isinstance(spec_ref, str) else spec_ref
    harness = Harness(spec, device="cpu")
    model, _ = harness.build()
    if weights:
        load_weights(model, weights)
    model.eval()
    return harness, model


def build_failed(command: str, check: str, spec_ref: Any, error: Any) -> Report:
    """The report of a command whose model could not even be built: one failed check naming the user's line."""
    report = Report(command, subject={"spec": spec_ref if isinstance(spec_ref, str) else "TrainingSpec"})
    result = CheckResult(check)
    result.add("error", f"{check}: {error.describe()}", location=error.location)
    result.summary = f"{error.phase} raised"
    report.checks.append(result)
    return report


def load_weights(model: torch.nn.Module, path: str) -> None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise UserError(f"{path}: weights file not found") from None
    except Exception as e:
        raise UserError(f"{path}: cannot be loaded with torch.load ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        model.load_state_dict(state)
    except Exception as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{path}: does not fit the spec's model ({first}); pass the matching weights") from None


def fresh_inputs(tensors: list[torch.Tensor], batch_dim: int, batch: int, seed: int) -> list[torch.Tensor]:
    """Inputs of the same kind as the batch: floats with its mean/std, ids drawn within its range."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in tensors:
        shape = list(t.shape)
        if t.dim() > batch_dim:
            shape[batch_dim] = batch
        if t.is_floating_point():
            std = float(t.float().std()) if t.numel() > 1 else 1.0
            out.append((torch.randn(shape, generator=gen) * (std or 1.0) + float(t.float().mean())).to(t.dtype))
        elif t.dtype == torch.bool:
            out.append(torch.rand(shape, generator=gen) > 0.5)
        else:
            lo, hi = int(t.min()), int(t.max())
            out.append(torch.randint(lo, hi + 1, shape, generator=gen, dtype=t.dtype))
    return out


def _diff(expected: list[torch.Tensor], actual: list[Any]) -> tuple[float, float]:
    import numpy as np

    max_abs = max_rel = 0.0
    for e, a in zip(expected, actual):
        e_np = e.detach().cpu().float().numpy()
        a_np = np.asarray(a, dtype=np.float32)
        if e_np.shape != a_np.shape:
            return float("inf"), float("inf")
        d = np.abs(e_np - a_np)
        max_abs = max(max_abs, float(d.max()) if d.size else 0.0)
        max_rel = max(max_rel, float((d / (np.abs(e_np) + 1e-12)).max()) if d.size else 0.0)
    return max_abs, max_rel


def _close(expected: list[torch.Tensor], actual: list[Any], atol: float, rtol: float) -> bool:
    import numpy as np

    return all(
        np.asarray(a).shape == tuple(e.shape)
        and np.allclose(np.asarray(a, dtype=np.float32), e.detach().cpu().float().numpy(), atol=atol, rtol=rtol)
        for e, a in zip(expected, actual)
    )


def _median_ms(fn: Callable[[], Any], repeat: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def export_onnx(
    model: torch.nn.Module,
    names: list[str],
    example: list[torch.Tensor],
    path: str,
    *,
    batch_dim: int,
    n_outputs: int,
    exporter: str,
    opset: int | None,
) -> list[str]:
    """Export with a dynamic batch axis; return the exporter's warnings (tracer warnings name frozen branches)."""
    import torch

    out_names = [f"output_{i}" for i in range(n_outputs)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model,
                tuple(example),
                path,
                dynamo=True,
                input_names=names,
                output_names=out_names,
                dynamic_shapes=tuple({batch_dim: batch} if t.dim() > batch_dim else {} for t in example),
                opset_version=opset,
                verbose=False,
            )
        else:
            axes = {n: {batch_dim: "batch"} for n, t in zip(names, example) if t.dim() > batch_dim}
            axes.update({n: {batch_dim: "batch"} for n in out_names})
            torch.onnx.export(
                model,
                tuple(example),
                path,
                dynamo=False,
                input_names=names,
                output_names=out_names,
                dynamic_axes=axes,
                opset_version=opset,
            )
    return sorted(
        {
            str(w.message).splitlines()[0]
            for w in caught
            if "Tracer" in type(w.message).__name__ or "might cause the trace to be incorrect" in str(w.message)
        }
    )


def export_parity(
    spec_ref: Any,
    *,
    weights: str | None = None,
    golden: list[str] | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    exporter: str = "torchscript",
    opset: int | None = None,
    keep: str | None = None,
    export_fn: Callable[..., Any] | None = None,
) -> Report:
    """Export, run in onnxruntime, compare on the batch, fresh inputs, other batch sizes and golden inputs."""
    import torch

    from ci_checks.engine.harness import probe_mode
    from ci_checks.engine.tree import flat_inputs, output_tensors

    from ci_checks.engine.usercode import UserCodeError

    ort = _import_runtime()
    try:
        harness, model = serving_model(spec_ref, weights)
    except UserCodeError as e:  # the user's factory or setup raised: a finding about that code, not the kit's bug
        return build_failed("export-parity", "onnx-export", spec_ref, e)
    spec = harness.spec
    names, example = flat_inputs(harness.inputs, command="export-parity")
    bd = spec.batch_dim
    report = Report(
        "export-parity",
        subject={
            "spec": spec_ref if isinstance(spec_ref, str) else "TrainingSpec",
            "exporter": exporter,
            "atol": atol,
            "rtol": rtol,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        },
    )
    export = CheckResult("onnx-export")
    report.checks.append(export)
    # The export goes to a temporary file (next to --keep, so keeping it is an atomic rename), removed on every way
    # out: an interrupted or failed export never leaves a half-written model where --keep points.
    if keep:
        if os.path.isdir(keep):
            raise UserError(f"--keep {keep}: is a folder; pass a file name such as model.onnx")
        try:
            path = _io.stage(keep, suffix=".onnx")
        except OSError as e:
            raise UserError(f"--keep {keep}: cannot write there ({e.strerror}); pass another path") from None
    else:
        fd, path = tempfile.mkstemp(prefix="ci-checks-", suffix=".onnx")
        os.close(fd)

    def call(*xs: torch.Tensor) -> Any:
        """Call the model with flat tensors, rebuilt into the batch's structure."""
        if isinstance(harness.inputs, dict):
            return harness.forward(model, dict(zip(names, xs)))
        if len(xs) == 1 and isinstance(harness.inputs, torch.Tensor):
            return harness.forward(model, xs[0])
        return harness.forward(model, xs)

    try:
        with torch.no_grad():
            reference = output_tensors(call(*example))
        start = time.perf_counter()
        user_export = export_fn or getattr(spec, "export", None)
        tracer_warnings: list[str] = []
        try:
            if user_export is not None:
                user_export(model, harness.inputs, path)
            else:
                tracer_warnings = export_onnx(
                    model, names, example, path, batch_dim=bd, n_outputs=len(reference), exporter=exporter, opset=opset
                )
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            export.add(
                "error",
                f"onnx-export: the model cannot be exported to ONNX and loaded in onnxruntime: "
                f"{type(e).__name__}: {first} - an operator without an ONNX mapping, or Python values the "
                "exporter cannot trace; try --exporter dynamo, a newer --opset, or rewrite the op",
                location=spec.location,
            )
            export.summary = "export failed"
            return report
        export.duration_s = time.perf_counter() - start
        export.figures.update(
            size_bytes=os.path.getsize(path), seconds=round(export.duration_s, 3), tracer_warnings=tracer_warnings
        )
        export.summary = f"exported with {exporter} ({os.path.getsize(path) / 1024:.0f} KiB)"
        for w in tracer_warnings:
            export.add("notice", f"onnx-export: exporter warning: {w}")
        feed_names = [i.name for i in session.get_inputs()]

        def ort_run(xs: list[torch.Tensor]) -> list[Any]:
            return list(session.run(None, {n: x.cpu().numpy() for n, x in zip(feed_names, xs)}))

        cases: list[tuple[str, list[torch.Tensor]]] = [("spec batch", example)]
        n = int(example[0].shape[bd]) if example[0].dim() > bd else 1
        for i, size in enumerate(sorted({n, 1, 2 * n + 1})):
            cases.append((f"fresh inputs, batch {size}", fresh_inputs(example, bd, size, seed=100 + i)))
        for file in golden or []:
            try:
                loaded = torch.load(file, map_location="cpu", weights_only=False)
            except Exception as e:
                raise UserError(f"{file}: cannot load golden inputs ({type(e).__name__}: {e})") from None
            cases.append((f"golden {os.path.basename(file)}", flat_inputs(loaded, command="export-parity")[1]))
        parity = CheckResult("onnx-parity")
        report.checks.append(parity)
        worst = ("", 0.0, 0.0)
        failing: list[str] = []
        per_case: dict[str, float] = {}
        with probe_mode(model, training=False), torch.no_grad():
            for label, xs in cases:
                try:
                    expected = output_tensors(call(*xs))
                except Exception as e:
                    why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
                    if label.startswith("golden"):
                        raise UserError(
                            f"{label.removeprefix('golden ')}: the model rejects these golden inputs "
                            f"({why}); save inputs shaped like the spec's batch"
                        ) from None
                    parity.add("notice", f"onnx-parity: PyTorch itself rejects {label} ({why}); skipped")
                    continue
                try:
                    actual = ort_run(xs)
                except Exception as e:
                    parity.add(
                        "error",
                        f"onnx-parity: onnxruntime failed on {label}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]} - the batch axis was not exported as dynamic, or "
                        "a shape is baked into the graph",
                        location=spec.location,
                        input=label,
                    )
                    failing.append(label)
                    continue
                max_abs, max_rel = _diff(expected, actual)
                per_case[label] = max_abs
                if max_abs >= worst[1]:
                    worst = (label, max_abs, max_rel)
                if not _close(expected, actual, atol, rtol):
                    failing.append(label)
        parity.figures.update(
            max_abs_diff=worst[1], max_rel_diff=worst[2], worst_input=worst[0], per_input=per_case, inputs=len(cases)
        )
        parity.summary = f"{len(cases)} inputs: max abs diff {worst[1]:.3g} (worst: {worst[0]})"
        if failing and not parity.findings:
            hint = (
                "the exported graph froze a data-dependent Python branch or a shape (" + tracer_warnings[0] + ")"
                if tracer_warnings
                else "data-dependent Python control flow, a training-mode path, or an "
                "operator that differs in onnxruntime"
            )
            only_other = "spec batch" not in failing
            parity.add(
                "error",
                f"onnx-parity: ONNX outputs differ from PyTorch eval mode on {len(failing)} of "
                f"{len(cases)} inputs (max abs diff {worst[1]:.3g} on {worst[0]}, atol {atol}, rtol {rtol})"
                + (" but match on the export input" if only_other else "")
                + f" - {hint}",
                location=spec.location,
                failing=failing,
            )
        latency = CheckResult("onnx-latency")
        report.checks.append(latency)
        torch_ms = _median_ms(lambda: call(*example))
        ort_ms = _median_ms(lambda: ort_run(example))
        latency.figures.update(
            torch_ms=round(torch_ms, 4),
            onnxruntime_ms=round(ort_ms, 4),
            speedup=round(torch_ms / ort_ms, 3) if ort_ms else None,
            batch=n,
        )
        latency.summary = f"per batch of {n}: PyTorch {torch_ms:.3f} ms, onnxruntime {ort_ms:.3f} ms"
        if torch.cuda.is_available():
            report.checks.append(_cuda_parity(harness, model, call, example, atol, rtol))
        if keep:
            os.replace(path, keep)
    finally:
        if os.path.exists(path):
            os.remove(path)
    return report


def _cuda_parity(
    harness: Harness,
    model: torch.nn.Module,
    call: Callable[..., Any],
    example: list[torch.Tensor],
    atol: float,
    rtol: float,
) -> CheckResult:
    """Eager outputs on CPU and CUDA agree."""
    from ci_checks.engine.tree import output_tensors

    import torch

    result = CheckResult("cuda-parity")
    with torch.no_grad():
        cpu = output_tensors(call(*example))
        model.to("cuda")
        try:
            gpu = [t.cpu() for t in output_tensors(call(*[x.cuda() for x in example]))]
        finally:
            model.to("cpu")
    max_abs, _ = _diff(cpu, [g.numpy() for g in gpu])
    result.figures["max_abs_diff"] = max_abs
    result.summary = f"CPU vs CUDA: max abs diff {max_abs:.3g}"
    if not _close(cpu, [g.numpy() for g in gpu], atol * 10, rtol * 10):
        result.add(
            "error",
            f"cuda-parity: CPU and CUDA outputs differ by {max_abs:.3g} - device-specific code paths "
            "or TF32 matmuls (torch.backends.cuda.matmul.allow_tf32)",
            location=harness.spec.location,
        )
    return result
