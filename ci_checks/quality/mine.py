"""Hard examples: the evaluation set's highest-loss examples, written as a named suite that `golden` and `quality`
keep as a regression test.

A suite NAME is two files in the suites folder (golden's folder by default): NAME.pt, the inputs saved with
torch.save (what `ci-checks golden --suite NAME=DIR/NAME.pt` reads), and NAME.quality.json, their ids, labels,
losses and whether the mined model got them right (what `ci-checks quality` reads). Mining again replaces both
at once and keeps the previous ones as .bak; files of that name the kit did not write are never replaced.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any

from ci_checks._errors import UserError
from ci_checks.quality.evaluate import SUITE_SUFFIX, Dataset, Evaluation, take
from ci_checks.results import CheckResult, Kind

BACKUP_SUFFIX = ".bak"


def hardest(evaluation: Evaluation, n: int) -> list[int]:
    """The indices of the n highest-loss examples, hardest first (ties: the earlier example first)."""
    import numpy as np

    order = np.lexsort((np.arange(len(evaluation.losses)), -evaluation.losses))
    return [int(i) for i in order[:n]]


def mine(
    evaluation: Evaluation, data: Dataset, n: int, *, name: str, directory: str, failure: str, source: str
) -> CheckResult:
    """Write the n hardest examples as suite `name` in directory; the result lists them."""
    import torch

    from ci_checks import _io
    from ci_checks.commands.golden import check_suite_name

    check_suite_name(name)
    if n < 1:
        raise UserError(f"--mine must be at least 1, got {n}")
    picked = hardest(evaluation, n)
    json_path = os.path.join(directory, name + SUITE_SUFFIX)
    inputs_path = os.path.join(directory, name + ".pt")
    if os.path.exists(inputs_path) and not os.path.exists(json_path):
        raise UserError(
            f"{inputs_path}: exists and was not written by ci-checks quality --mine (no {name}{SUITE_SUFFIX} next "
            "to it); choose another --suite-name"
        )
    for path in (json_path, inputs_path):
        if os.path.isdir(path):
            raise UserError(f"{path}: is a folder, where suite '{name}' goes; choose another --suite-name")
    preds = evaluation.predictions
    doc: dict[str, Any] = {
        "suite": name,
        "failure": failure,
        "inputs": name + ".pt",
        "ids": [evaluation.ids[i] for i in picked],
        "index": picked,
        "targets": [int(evaluation.targets[i]) for i in picked],
        "loss": [round(float(evaluation.losses[i]), 6) for i in picked],
        "correct": [bool(preds[i] == evaluation.targets[i]) for i in picked],
        "mined_from": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    selected = take(data.inputs, picked)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UserError(f"{directory}: is a file, not the suites folder; set suites-dir or pass --suites-dir")
    import contextlib

    staged: list[tuple[str, str]] = []
    try:
        os.makedirs(directory, exist_ok=True)
        staged.append((_io.stage(inputs_path, suffix=".pt"), inputs_path))
        torch.save(selected, staged[-1][0])
        staged.append((_io.stage(json_path, suffix=".json"), json_path))
        with open(staged[-1][0], "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=1) + "\n")
        _io.replace_all(staged, backup_suffix=BACKUP_SUFFIX)
        staged = []
    except OSError as e:
        raise UserError(f"{e.filename or directory}: cannot write suite '{name}' ({e.strerror or e})") from None
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.remove(tmp)
    result = CheckResult(f"quality mine {name}", figures={"kind": Kind.QUALITY.value, "suite": "mine"})
    rows = [
        {
            "rank": k + 1,
            "index": i,
            "id": evaluation.ids[i],
            "loss": round(float(evaluation.losses[i]), 4),
            "target": int(evaluation.targets[i]),
            "predicted": int(preds[i]),
        }
        for k, i in enumerate(picked)
    ]
    result.figures.update(name=name, rows=rows, inputs=inputs_path, cases=json_path, failure=failure)
    result.summary = f"{len(picked)} hardest examples written to {inputs_path} and {json_path}"
    for row in rows:
        result.add(
            "notice",
            f"#{row['rank']} id {row['id']} (index {row['index']}): loss {row['loss']:.3f}, label {row['target']}, "
            f"predicted {row['predicted']}",
        )
    return result
