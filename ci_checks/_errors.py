"""The exit-code contract and the one place that maps failures to it.

Besides the mapping, this module owns how the process is stopped: SIGTERM and SIGHUP unwind like Ctrl-C (so every
cleanup runs and the exit code is 130), cleanups that must finish hold those signals until they are done, and the
code under test cannot end the process behind the kit's back (sys.exit, os._exit, os.abort, a signal to itself).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Bad input from the user: exit 2 with one line that names the problem and the fix."""


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) arrived: unwind like Ctrl-C, so every cleanup runs."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class HardExit(SystemExit):
    """The code under test tried to end the process without unwinding (os._exit, os.abort, a signal to itself).

    A SystemExit, so it is reported as sys.exit() is: a finding inside the user's hooks, exit 2 elsewhere.
    """

    def __init__(self, call: str, code: Any = None) -> None:
        self.call = call
        super().__init__(code)


def _termination_signals() -> list[signal.Signals]:
    return [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted in the main thread while the block runs, as SIGINT raises
    KeyboardInterrupt: `finally` blocks remove workspaces, temporary files and child processes, and the exit is 130.

    A signal the parent set to be ignored (nohup) stays ignored; outside the main thread this does nothing.
    """
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in _termination_signals():
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_deferring: list[bool] = []  # non-empty while signals_deferred holds the signals


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while a cleanup runs, then raise the first one that arrived.

    A second Ctrl-C in the middle of removing a git worktree would otherwise leave half of it registered. Nested
    blocks hold until the outermost one ends.
    """
    if not _in_main_thread() or _deferring:
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, *_termination_signals()):
        current = signal.getsignal(sig)
        if current is not signal.SIG_IGN and current is not None:
            previous[sig] = signal.signal(sig, hold)
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
        for sig, old in previous.items():
            signal.signal(sig, old)
        if pending:
            if pending[0] == signal.SIGINT:
                raise KeyboardInterrupt
            raise Interrupted(pending[0])


@contextlib.contextmanager
def guard_process_exits() -> Iterator[None]:
    """While the block runs, os._exit, os.abort and a signal the process sends itself raise HardExit instead.

    The code under test then cannot end a CI step silently with whatever exit code it chose. Only this process is
    guarded: a child forked inside the block (a DataLoader worker) still ends with the real os._exit.
    """
    owner = os.getpid()
    real_exit, real_abort, real_kill = os._exit, os.abort, os.kill
    real_killpg = getattr(os, "killpg", None)
    real_raise = signal.raise_signal
    stopping = {int(s) for s in (signal.SIGINT, *_termination_signals())}
    stopping |= {int(s) for name in ("SIGKILL", "SIGQUIT", "SIGABRT") if (s := getattr(signal, name, None)) is not None}

    def is_us(pid: int) -> bool:
        return os.getpid() == owner and pid in (0, owner)

    def name(sig: int) -> str:
        try:
            return signal.Signals(sig).name
        except ValueError:
            return str(sig)

    def _exit(code: int) -> NoReturn:
        if os.getpid() != owner:
            real_exit(code)
        raise HardExit(f"os._exit({code!r})", code)

    def abort() -> NoReturn:
        if os.getpid() != owner:
            real_abort()
        raise HardExit("os.abort()", "abort")

    def kill(pid: int, sig: int) -> None:
        if is_us(pid) and sig in stopping:
            raise HardExit(f"os.kill(its own pid, {name(sig)})", name(sig))
        real_kill(pid, sig)

    def killpg(pgid: int, sig: int) -> None:
        assert real_killpg is not None
        if os.getpid() == owner and pgid in (0, os.getpgid(0)) and sig in stopping:
            raise HardExit(f"os.killpg(its own process group, {name(sig)})", name(sig))
        real_killpg(pgid, sig)

    def raise_signal(sig: int) -> None:
        if os.getpid() == owner and sig in stopping:
            raise HardExit(f"signal.raise_signal({name(sig)})", name(sig))
        real_raise(sig)

    patches: list[tuple[Any, str, Callable[..., Any]]] = [
        (os, "_exit", _exit),
        (os, "abort", abort),
        (os, "kill", kill),
        (signal, "raise_signal", raise_signal),
    ]
    if real_killpg is not None:
        patches.append((os, "killpg", killpg))
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    for obj, attr, fn in patches:
        setattr(obj, attr, fn)
    try:
        yield
    finally:
        for obj, attr, fn in saved:
            setattr(obj, attr, fn)


def describe_exit(error: SystemExit) -> str:
    """One line for a SystemExit that reached the command's top: the code under test ended the run."""
    from ci_checks.engine.usercode import user_location

    call = error.call if isinstance(error, HardExit) else f"sys.exit({error.code!r})"
    where = user_location(error.__traceback__)
    at = f" at {where}" if where else ""
    return (
        f"the code under test called {call}{at}, so ci-checks stopped without a verdict; remove that call from "
        "the code the spec runs (a script's main() or argparse run at import or inside the model)"
    )


@contextlib.contextmanager
def error_handler(*, debug: bool = False) -> Iterator[None]:
    """Turn exceptions raised inside the block into the documented exit codes.

    The kit itself never raises SystemExit inside the block: one that arrives came from the code under test and is
    bad input (exit 2) with the user's frame, never the exit code that code chose (`sys.exit(0)` is not a pass).
    """
    try:
        yield
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"ci-checks: error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt as e:
        why = f" ({e.args[0]})" if isinstance(e, Interrupted) and e.args else ""
        print(f"ci-checks: interrupted{why}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except SystemExit as e:
        if debug:
            traceback.print_exc()
        print(f"ci-checks: error: {describe_exit(e)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except BaseException as e:  # noqa: BLE001 - the contract: any other failure is ours
        if debug:
            traceback.print_exc()
        print(
            f"ci-checks: internal error: {type(e).__name__}: {e} "
            "(rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERNAL) from None
