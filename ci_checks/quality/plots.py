"""The reliability diagram: accuracy against confidence per bin, this change's model and the base's."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ci_checks._errors import UserError


def reliability_png(
    sides: Mapping[str, Sequence[Mapping[str, Any]]], path: str, *, title: str = "Reliability diagram"
) -> str:
    """Write the diagram of each side's bins (label -> reliability rows) as a PNG, atomically; return its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plots-dir needs matplotlib: pip install 'ci-checks[report]'") from None
    from ci_checks import _io

    colors = {"base": ("#8c959f", "--"), "head": ("#0969da", "-")}
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([0, 1], [0, 1], ":", color="#57606a", linewidth=1, label="perfect calibration")
    for side, rows in sides.items():
        color, style = colors.get(side, ("#cf222e", "-"))
        xs = [float(r["confidence"]) for r in rows]
        ys = [float(r["accuracy"]) for r in rows]
        ax.plot(xs, ys, style, marker="o", color=color, linewidth=2, label="main" if side == "base" else "this change")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with _io.temp_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    except OSError as e:
        raise UserError(f"--plots-dir: cannot write {path} ({e.strerror or e}); pass another folder") from None
    finally:
        plt.close(fig)
    return path
