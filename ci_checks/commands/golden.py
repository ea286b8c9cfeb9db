"""golden: record the model's outputs on committed golden inputs, and later compare with tolerance, per suite."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from ci_checks._errors import UserError
from ci_checks.commands import add_config_option, add_results_options, add_spec_option, emit_results
from ci_checks.commands import project_config, spec_ref
from ci_checks.config import validate_section
from ci_checks.results import CheckResult, Report

HELP = "compare the model's outputs on committed golden inputs with the recorded ones (--update records them)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_option(parser)
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="trained weights to load (default: [tool.ci-checks.golden] "
        "weights, else the freshly built seeded model)",
    )
    parser.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="NAME=INPUTS.pt",
        help="a named suite of golden inputs saved with torch.save, repeatable "
        "(default: [tool.ci-checks.golden] suites)",
    )
    parser.add_argument("--dir", help="where recorded outputs live (default: golden/)")
    parser.add_argument("--update", action="store_true", help="record the current outputs instead of comparing")
    parser.add_argument("--atol", type=float, help="absolute tolerance (default: 1e-4)")
    parser.add_argument("--rtol", type=float, help="relative tolerance (default: 1e-3)")
    add_results_options(parser)
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    config, path = project_config(args)
    golden = config.get("golden") or validate_section("golden")
    spec = spec_ref(args, config, path)
    suites = dict(golden["suites"])
    for item in args.suite:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            raise UserError(f"--suite {item!r}: expected NAME=INPUTS.pt, e.g. --suite night-time=golden/night.pt")
        suites[name] = path
    if not suites:
        raise UserError("no golden suites: pass --suite NAME=INPUTS.pt or set suites under [tool.ci-checks.golden]")
    report = golden_check(
        spec,
        suites,
        directory=args.dir or golden["dir"],
        weights=args.weights or golden["weights"],
        update=args.update,
        atol=args.atol if args.atol is not None else golden["atol"],
        rtol=args.rtol if args.rtol is not None else golden["rtol"],
    )
    return emit_results(report, args, config)


def golden_check(
    spec_ref: Any,
    suites: Mapping[str, str],
    *,
    directory: str,
    weights: str | None = None,
    update: bool = False,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> Report:
    """Compare (or with update=True, record) outputs per suite."""
    import numpy as np
    import torch

    from ci_checks.commands.export_parity import serving_model
    from ci_checks.engine.tree import flat_inputs, output_tensors

    harness, model = serving_model(spec_ref, weights)
    report = Report(
        "golden",
        subject={
            "spec": spec_ref if isinstance(spec_ref, str) else "TrainingSpec",
            "weights": weights,
            "update": update,
            "atol": atol,
            "rtol": rtol,
        },
    )
    for name, inputs_path in suites.items():
        result = CheckResult(f"golden {name}")
        report.checks.append(result)
        try:
            loaded = torch.load(inputs_path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise UserError(
                f"{inputs_path}: golden inputs of suite '{name}' not found; save them with torch.save"
            ) from None
        except Exception as e:
            raise UserError(f"{inputs_path}: cannot load golden inputs ({type(e).__name__}: {e})") from None
        names, xs = flat_inputs(loaded, command="golden")
        inputs: Any = (
            dict(zip(names, xs))
            if isinstance(loaded, dict)
            else (xs[0] if len(xs) == 1 and isinstance(loaded, torch.Tensor) else tuple(xs))
        )
        try:
            with torch.no_grad():
                outputs = [t.float().numpy() for t in output_tensors(harness.forward(model, inputs))]
        except Exception as e:
            raise UserError(
                f"{inputs_path}: the model rejects suite '{name}' ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); the golden inputs do not fit the model"
            ) from None
        expected_path = os.path.join(directory, f"{name}.expected.npz")
        if update:
            os.makedirs(directory, exist_ok=True)
            np.savez_compressed(expected_path, *outputs)
            result.summary = f"recorded {outputs[0].shape[0] if outputs[0].ndim else 1} outputs to {expected_path}"
            result.figures["recorded"] = expected_path
            continue
        if not os.path.exists(expected_path):
            raise UserError(
                f"{expected_path}: no recorded outputs for suite '{name}'; run ci-checks golden --update "
                "and commit the file (or track it with DVC)"
            )
        with np.load(expected_path) as data:
            expected = [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[-1]))]
        if len(expected) != len(outputs) or any(e.shape != o.shape for e, o in zip(expected, outputs)):
            raise UserError(
                f"{expected_path}: recorded outputs have shapes {[e.shape for e in expected]} but the model "
                f"gives {[o.shape for o in outputs]}; rerun with --update if the change is intended"
            )
        drift = max(float(np.abs(e - o).max()) if e.size else 0.0 for e, o in zip(expected, outputs))
        main_e, main_o = expected[0], outputs[0]
        changed = total = 0
        if main_e.ndim >= 2 and main_e.shape[-1] > 1:
            changed = int((main_e.argmax(-1) != main_o.argmax(-1)).sum())
            total = int(np.prod(main_e.shape[:-1]))
        ok = all(np.allclose(o, e, atol=atol, rtol=rtol) for e, o in zip(expected, outputs))
        result.figures.update(
            max_drift=drift,
            changed_predictions=changed,
            predictions=total,
            changed_fraction=changed / total if total else 0.0,
        )
        result.summary = f"max drift {drift:.3g}" + (f", {changed}/{total} predictions changed class" if total else "")
        if not ok:
            result.add(
                "error",
                f"golden {name}: outputs drifted from the recorded ones (max {drift:.3g}, atol {atol}, "
                f"rtol {rtol})"
                + (f"; {changed} of {total} predictions changed class" if total else "")
                + " - if intended, rerun ci-checks golden --update and commit the new outputs",
                suite=name,
                max_drift=drift,
                changed=changed,
            )
    return report
