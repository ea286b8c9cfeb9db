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
        self._idle = False  # the heartbeat thread waits for a step to start (and wants to be told)
        self._steady: Any = None  # inside steady(): the SIGALRM handler to restore at its end
        self._hard_stop_at: float | None = None  # when faulthandler's watchdog was last armed

    @contextmanager
    def steady(self) -> Iterator[None]:
        """Many steps in a row: the alarm's handler is installed once for all of them, and the hard stop re-armed
        only every HARD_STOP_GRACE_S / 2 seconds, so a step of a small model pays two setitimer calls, not ten
        system calls and a thread."""
        if self._steady is not None:
            yield
            return
        previous = self._install()
        self._steady = previous if previous is not None else False
        try:
            yield
        finally:
            self._steady = None
            if previous is not None:
                signal.signal(signal.SIGALRM, previous)
            if self._hard_stop_at is not None:
                import faulthandler

                faulthandler.cancel_dump_traceback_later()
                self._hard_stop_at = None

    @contextmanager
    def step(self, number: int | None) -> Iterator[None]:
        limit = step_limit()
        seconds = limit.seconds
        if self._steady is None:
            alarm = self._arm(seconds) if seconds is not None else None
            dumping = self._arm_hard_stop(seconds) if seconds is not None and limit.hard_stop else False
        else:
            alarm = None
            if seconds is not None and self._steady is not False:
                signal.setitimer(signal.ITIMER_REAL, seconds)
            dumping = False
            if seconds is not None and limit.hard_stop:
                now = time.perf_counter()
                # Armed at most HARD_STOP_GRACE_S / 2 ago: a step stuck from now on is ended between
                # seconds + grace / 2 and seconds + grace after it started, never sooner.
                if self._hard_stop_at is None or now - self._hard_stop_at > self.HARD_STOP_GRACE_S / 2:
                    if self._arm_hard_stop(seconds):
                        self._hard_stop_at = now
        start = time.perf_counter()
        self._begin(number, start, limit)
        try:
            yield
        except _StepAlarm as e:
            assert seconds is not None
            raise StepTimeout("the training step", e, step=number, limit=seconds, stopped=True) from None
        finally:
            try:
                if self._steady is None:
                    self._disarm(alarm)
                elif seconds is not None and self._steady is not False:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            finally:
                if dumping:
                    import faulthandler

                    faulthandler.cancel_dump_traceback_later()
                self._end()
        if seconds is not None and time.perf_counter() - start > seconds:
            # No alarm here (not the main thread, or no SIGALRM): the step is reported once it returns.
            raise StepTimeout("the training step", TimeoutError(), step=number, limit=seconds, stopped=False)

    # ---------------------------------------------------------------- the alarm

    @staticmethod
    def _ring(signum: int, frame: Any) -> None:
        raise _StepAlarm()

    def _install(self) -> Any:
        """Install the alarm's handler; return the one to restore, or None when the alarm cannot be used here."""
        if (
            not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0  # someone else's timer (pytest-timeout): leave it alone
        ):
            return None
        previous = signal.signal(signal.SIGALRM, self._ring)
        return previous if previous is not None else signal.SIG_DFL

    def _arm(self, seconds: float) -> Any:
        """Start SIGALRM's timer; return the handler to restore, or None when the alarm cannot be used here."""
        previous = self._install()
        if previous is not None:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        return previous

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
        self._running = (number, start, limit)  # read by the heartbeat thread; no lock, no wake-up per step
        if self._thread is None or self._idle:
            with self._cond:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._beat, name="ci-checks-heartbeat", daemon=True)
                    self._thread.start()
                self._cond.notify_all()

    def _end(self) -> None:
        self._running = None

    def _beat(self) -> None:
        """The heartbeat thread: one per harness, gone after a minute without steps.

        It sleeps until the running step's next beat is due and then looks whether that step is still running;
        steps that end before their first beat never wake it.
        """
        beaten: tuple[int | None, float, StepLimit] | None = None
        beats = 1
        idle_since = time.perf_counter()
        with self._cond:
            while True:
                running = self._running
                now = time.perf_counter()
                if running is None:
                    if now - idle_since > 60.0:
                        self._thread = None
                        return
                    self._idle = True
                    self._cond.wait(timeout=60.0)
                    self._idle = False
                    continue
                idle_since = now
                if running is not beaten:
                    beaten, beats = running, 1
                number, start, limit = running
                assert limit.heartbeat is not None
                due = start + beats * limit.heartbeat
                if now < due:
                    self._cond.wait(timeout=due - now)
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
