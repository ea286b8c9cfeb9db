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


BACKUP_SUFFIX = ".bak"


def check_suite_name(name: str) -> None:
    """A suite name becomes a file name (NAME.expected.npz): no folders, no hidden or special names."""
    bad = not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0")
    if bad or not name.isprintable():
        raise UserError(
            f"golden suite name {name!r} cannot be a file name (it becomes {name}.expected.npz); use letters, digits, "
            "'-', '_' or '.', without '/' and not starting with '.'"
        )


def recording_path(directory: str, name: str) -> str:
    return os.path.join(directory, f"{name}.expected.npz")


def _load_recording(path: str, name: str) -> list[Any]:
    """The recorded outputs of a suite, or one line saying why the file is not a recording."""
    import numpy as np

    if not os.path.exists(path):
        raise UserError(
            f"{path}: no recorded outputs for suite '{name}'; run ci-checks golden --update "
            "and commit the file (or track it with DVC)"
        )
    fix = "record it again with ci-checks golden --update" + (
        f" (the previous recording is kept as {path}{BACKUP_SUFFIX})" if os.path.exists(path + BACKUP_SUFFIX) else ""
    )
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, not the recorded outputs of suite '{name}'; {fix}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not data.files or any(not (k.startswith("arr_") and k[4:].isdigit()) for k in data.files):
                raise ValueError(f"holds {sorted(data.files)!r}, not arr_0, arr_1, ...")
            keys = sorted(data.files, key=lambda k: int(k[4:]))
            return [data[k] for k in keys]
    except Exception as e:  # a zip of a different kind, truncated, empty, pickled: not a recording
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}" if str(e) else type(e).__name__
        raise UserError(f"{path}: not a recording written by ci-checks golden --update ({why}); {fix}") from None


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
    """Compare (or with update=True, record) outputs per suite.

    An update is all or nothing: every suite's outputs are computed first, then every recording is replaced at once
    (each file atomically, the previous one kept as NAME.expected.npz.bak), so a suite the model rejects leaves all
    recordings as they were.
    """
    import torch

    from ci_checks.commands.export_parity import build_failed, serving_model
    from ci_checks.engine.tree import flat_inputs, output_tensors
    from ci_checks.engine.usercode import UserCodeError

    for name in suites:
        check_suite_name(name)
    for what, value in (("atol", atol), ("rtol", rtol)):
        if not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
            raise UserError(f"--{what} must be a finite number at least 0, got {value!r}")
    try:
        harness, model = serving_model(spec_ref, weights)
    except UserCodeError as e:  # the user's factory or setup raised: a finding about that code, not the kit's bug
        return build_failed("golden", "golden", spec_ref, e)
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
    recorded: list[tuple[CheckResult, str, list[Any]]] = []
    for name, inputs_path in suites.items():
        result = CheckResult(f"golden {name}")
        report.checks.append(result)
        if os.path.isdir(inputs_path):
            raise UserError(f"{inputs_path}: golden inputs of suite '{name}' is a folder; save them with torch.save")
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
        if not outputs:
            raise UserError(f"suite '{name}': the model returned no tensors for {inputs_path}; nothing to record")
        expected_path = recording_path(directory, name)
        if update:
            recorded.append((result, expected_path, outputs))
            continue
        expected = _load_recording(expected_path, name)
        if len(expected) != len(outputs) or any(e.shape != o.shape for e, o in zip(expected, outputs)):
            raise UserError(
                f"{expected_path}: recorded outputs have shapes {[e.shape for e in expected]} but the model "
                f"gives {[o.shape for o in outputs]}; rerun with --update if the change is intended"
            )
        _compare(result, name, expected, outputs, atol=atol, rtol=rtol)
    if update:
        _record(directory, recorded)
    return report


def _record(directory: str, recorded: list[tuple[CheckResult, str, list[Any]]]) -> None:
    """Write every suite's recording, all or nothing, keeping the previous ones as backups."""
    import contextlib

    import numpy as np

    from ci_checks import _io

    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UserError(f"{directory}: is a file, not a folder for the golden recordings; pass another --dir")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise UserError(f"{directory}: cannot create the golden folder ({e.strerror}); pass another --dir") from None
    staged: list[tuple[str, str]] = []
    try:
        for _, path, outputs in recorded:
            if os.path.isdir(path):
                raise UserError(f"{path}: is a folder, where suite's recording goes; remove it or pass another --dir")
            tmp = _io.stage(path, suffix=".npz")
            staged.append((tmp, path))
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, *outputs)
                fh.flush()
                os.fsync(fh.fileno())
        _io.replace_all(staged, backup_suffix=BACKUP_SUFFIX)
        staged = []
    except OSError as e:
        raise UserError(
            f"{e.filename or directory}: cannot write the golden recordings ({e.strerror or e}); no suite was "
            "updated"
        ) from None
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.remove(tmp)
    for result, path, outputs in recorded:
        result.summary = f"recorded {outputs[0].shape[0] if outputs[0].ndim else 1} outputs to {path}"
        result.figures["recorded"] = path


def _compare(
    result: CheckResult, name: str, expected: list[Any], outputs: list[Any], *, atol: float, rtol: float
) -> None:
    import numpy as np

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
