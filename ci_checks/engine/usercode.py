"""Exceptions raised by the user's code: told apart from the kit's own bugs, located, and explained.

An exception from the user's model, loss, step, setup or checkpoint hooks is a finding about that code (exit 1),
pointing at the innermost frame of the user's own files with the likely cause. Only an exception raised by the
kit's own code is an internal error (exit 3).
"""

from __future__ import annotations

import os
import re
import sysconfig
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from ci_checks.results import Location

T = TypeVar("T")
LONGEST = 200  # characters of an exception's message quoted in a finding

_KIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LIBRARIES = tuple(
    {
        os.path.abspath(p) + os.sep
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    }
)

# (pattern in the exception's message, likely cause): the first match explains the error.
CAUSES: tuple[tuple[str, str], ...] = (
    (
        r"backward through the graph a second time|buffers have already been freed",
        "backward through the graph a second time: a hidden state (or another tensor of the last step's graph) is "
        "reused without .detach() between steps or chunks",
    ),
    (
        r"modified by an inplace operation",
        "an in-place operation (relu_, +=, x[...] = ..., a parameter update before backward) overwrote a tensor "
        "autograd saved for the backward pass; use the out-of-place form",
    ),
    (
        r"does not require grad|does not have a grad_fn",
        "the loss is detached from the model (.detach(), .item(), torch.no_grad() or .data on the path)",
    ),
    (
        r"view size is not compatible|view\(\) on a non-contiguous",
        "view() on a non-contiguous tensor (after transpose/permute): use .reshape() or .contiguous().view()",
    ),
    (
        r"Target -?\d+ is out of bounds|out of bounds|index out of range|device-side assert",
        "a class id or token id outside [0, num_classes): padding or ignore_index targets not masked, or the "
        "output layer smaller than the label set",
    ),
    (
        r"shapes cannot be multiplied|size mismatch|must match the size|shape '.*' is invalid|doesn't match the "
        r"broadcast shape|Expected input batch_size",
        "a shape mismatch between layers, or between outputs and targets",
    ),
    (
        r"same device|Expected all tensors to be on the same device",
        "tensors on different devices: a tensor created without device=... inside the model or step",
    ),
    (
        r"expected scalar type|dtype|expected .*Long|found dtype",
        "a dtype mismatch (float targets where class ids are expected, or double inputs to a float model)",
    ),
    (r"out of memory", "out of memory: use a smaller batch in the spec"),
)


def is_user_file(filename: str) -> bool:
    """A file of the user's project: not the kit, not the standard library or installed packages."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    return not path.startswith(_KIT) and not path.startswith(_LIBRARIES)


def user_location(tb: TracebackType | None) -> Location | None:
    """The innermost frame of the traceback that lies in the user's own files."""
    found: Location | None = None
    for frame, line in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if is_user_file(filename):
            rel = os.path.relpath(filename)
            found = Location(rel if not rel.startswith("..") else filename, line)
    return found


def _is_kit(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_KIT)


def _files(error: BaseException) -> list[str]:
    return [frame.f_code.co_filename for frame, _ in traceback.walk_tb(error.__traceback__)]


def raised_by_kit(error: BaseException) -> bool:
    """Whether the kit's own code raised, as opposed to the user's code or a model the kit ran.

    Below the kit's plumbing (the first frames), the user's code runs: libraries, the user's files, and maybe the
    kit's callbacks (hooks inside backward). The innermost frame that is not a library's decides: the kit's is a
    bug of the kit, the user's (or none: a torch module with bad input) is the user's side. An error that never
    left the kit's frames is the kit's.
    """
    files = _files(error)
    start = next((i for i, f in enumerate(files) if not _is_kit(f)), None)
    if start is None:
        return True
    for filename in reversed(files[start:]):
        if _is_kit(filename):
            return True
        if is_user_file(filename):
            return False
    return False


def ran_the_model(error: BaseException) -> bool:
    """Whether the traceback passes through a torch module's call or the user's files: the model rejected input."""
    return any(is_user_file(f) or f.replace(os.sep, "/").endswith("torch/nn/modules/module.py") for f in _files(error))


def likely_cause(error: BaseException) -> str | None:
    call = getattr(error, "call", None)
    if isinstance(error, SystemExit) and isinstance(call, str):
        return f"the code called {call}, which ends the process without unwinding - return or raise instead"
    if isinstance(error, SystemExit):
        return "the code called sys.exit()/exit() - a script's main() or argparse run at import or inside the step"
    text = str(error)
    for pattern, cause in CAUSES:
        if re.search(pattern, text):
            return cause
    return None


def first_line(error: BaseException) -> str:
    call = getattr(error, "call", None)
    if isinstance(error, SystemExit) and isinstance(call, str):
        return call
    if isinstance(error, SystemExit):
        return f"SystemExit({error.code!r})"
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= LONGEST else line[: LONGEST - 3].rstrip() + "..."


class UserCodeError(Exception):
    """The user's code raised (or exited) in a phase of training: a finding about that code."""

    def __init__(self, phase: str, error: BaseException, *, step: int | None = None) -> None:
        self.phase = phase
        self.error = error
        self.step = step
        self.location = user_location(error.__traceback__)
        super().__init__(self.describe())

    def describe(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        text = f"{self.phase} raised {type(self.error).__name__}{at}: {first_line(self.error)}"
        cause = likely_cause(self.error)
        return f"{text} - {cause}" if cause else text


def call_user(phase: str, fn: Callable[..., T], *args: Any, step: int | None = None, **kwargs: Any) -> T:
    """Call the user's code; anything it raises, sys.exit() included, becomes a UserCodeError."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except UserCodeError:
        raise
    except (Exception, SystemExit) as e:
        if isinstance(e, Exception) and raised_by_kit(e):
            raise  # the kit's own bug (a callback of the kit's called by the user's code): exit 3
        raise UserCodeError(phase, e, step=step) from e
