"""The per-step time limit of the training harness: a step that hangs is stopped and reported, a long one says so.

The limit itself (how long, how often the heartbeat, whether a stuck process may be ended) is set with
ci_checks.engine.session.step_time_limit; StepWatch applies it to each step of one harness.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ci_checks.engine.session import StepLimit, step_limit
from ci_checks.engine.usercode import UserCodeError


class _Beating(Protocol):
    heartbeat: Callable[[str], None] | None


class _StepAlarm(BaseException):
    """Raised in the main thread by SIGALRM at the step's time limit; a BaseException, so a step's own
    `except Exception` cannot swallow it."""


class StepTimeout(UserCodeError):
    """A training step ran past the per-step time limit: a finding at the line it was stopped in."""

    def __init__(self, phase: str, error: BaseException, *, step: int | None, limit: float, stopped: bool) -> None:
        self.limit = limit
        self.stopped = stopped
        super().__init__(phase, error, step=step)

    def describe(self) -> str:
        which = f"step {self.step}" if self.step is not None else "a training step"
        at = f" (stopped at {self.location})" if self.stopped and self.location else ""
        return (
            f"{which} ran longer than {self.limit:g} s{at} - a hang (a data loader or lock that blocks, an endless "
            "loop) or a step far too slow for a smoke test on one small batch; fix it, or raise the limit "
            "(--step-timeout)"
        )


class StepWatch:
    """The per-step time limit and heartbeat of one harness (the limit: ci_checks.engine.session.step_time_limit).

    A step that runs past the limit is interrupted in the main thread (SIGALRM, where the platform has it and no one
    else's timer is armed) and reported as a StepTimeout at the line it was running; elsewhere the step is reported
    when it returns. While a step runs long, a heartbeat line says so every `heartbeat` seconds. With `hard_stop`
    (the command line, never inside a user's own process), a step stuck in native code that ignores the interrupt
    for HARD_STOP_GRACE_S more seconds gets every thread's stack dumped and the process ended.
    """

    HARD_STOP_GRACE_S = 30.0

    def __init__(self, harness: _Beating) -> None:
        self._harness = weakref.ref(harness)
        self._cond = threading.Condition()
        self._running: tuple[int | None, float, StepLimit] | None = None  # while a step runs
        self._thread: threading.Thread | None = None

    @contextmanager
    def step(self, number: int | None) -> Iterator[None]:
        limit = step_limit()
        seconds = limit.seconds
        alarm = self._arm(seconds) if seconds is not None else None
        dumping = self._arm_hard_stop(seconds) if seconds is not None and limit.hard_stop else False
        start = time.perf_counter()
        self._begin(number, start, limit)
        try:
            yield
        except _StepAlarm as e:
            assert seconds is not None
            raise StepTimeout("the training step", e, step=number, limit=seconds, stopped=True) from None
        finally:
            try:
                self._disarm(alarm)
            finally:
                if dumping:
                    import faulthandler

                    faulthandler.cancel_dump_traceback_later()
                self._end()
        if seconds is not None and time.perf_counter() - start > seconds:
            # No alarm here (not the main thread, or no SIGALRM): the step is reported once it returns.
            raise StepTimeout("the training step", TimeoutError(), step=number, limit=seconds, stopped=False)

    # ---------------------------------------------------------------- the alarm

    def _arm(self, seconds: float) -> Any:
        """Start SIGALRM's timer; return the handler to restore, or None when the alarm cannot be used here."""
        if (
            not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0  # someone else's timer (pytest-timeout): leave it alone
        ):
            return None

        def ring(signum: int, frame: Any) -> None:
            raise _StepAlarm()

        previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        return previous if previous is not None else signal.SIG_DFL

    def _disarm(self, previous: Any) -> None:
        if previous is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    def _arm_hard_stop(self, seconds: float) -> bool:
        import faulthandler

        stream = sys.__stderr__
        try:
            if stream is None:
                return False
            stream.fileno()
            faulthandler.dump_traceback_later(seconds + self.HARD_STOP_GRACE_S, exit=True, file=stream)
        except (AttributeError, ValueError, OSError, RuntimeError):
            return False
        return True

    # ---------------------------------------------------------------- the heartbeat

    def _begin(self, number: int | None, start: float, limit: StepLimit) -> None:
        harness = self._harness()
        if harness is None or harness.heartbeat is None or limit.heartbeat is None:
            return
        with self._cond:
            self._running = (number, start, limit)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="ci-checks-heartbeat", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _end(self) -> None:
        with self._cond:
            self._running = None
            self._cond.notify_all()

    def _beat(self) -> None:
        """The heartbeat thread: one per harness, gone after a minute without steps."""
        with self._cond:
            while True:
                if self._running is None:
                    self._cond.wait(timeout=60.0)
                    if self._running is None:
                        self._thread = None
                        return
                    continue
                number, start, limit = running = self._running
                assert limit.heartbeat is not None
                beats = 1
                while self._running is running:
                    wait = start + beats * limit.heartbeat - time.perf_counter()
                    if wait > 0:
                        self._cond.wait(timeout=wait)
                        continue
                    harness = self._harness()
                    if harness is None or harness.heartbeat is None:
                        self._thread = None
                        return
                    which = f"step {number}" if number is not None else "a training step"
                    cap = f" (limit {limit.seconds:g} s)" if limit.seconds is not None else ""
                    line = f"{which} still running after {beats * limit.heartbeat:.3g} s{cap}"
                    beat, beats = harness.heartbeat, beats + 1
                    del harness
                    self._cond.release()  # a slow stderr must not hold up the step's end
                    try:
                        beat(line)
                    except Exception:  # noqa: BLE001 - a progress line must never break the run
                        pass
                    finally:
                        self._cond.acquire()
