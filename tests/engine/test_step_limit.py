"""The per-step time limit, the heartbeat of a long step, and the checkpoints the harness cleans up."""

from __future__ import annotations

import gc
import math
import os
import threading
import time
from typing import Any

import pytest

from ci_checks._errors import UserError
from ci_checks.checks import run_checks
from ci_checks.engine.harness import Harness
from ci_checks.engine.step_limit import StepTimeout
from ci_checks.engine.session import DEFAULT_STEP_SECONDS, Session, RunNeeds, step_limit, step_time_limit


def stepping(hang_at: int | None = None, *, on_hang: Any = None) -> Any:
    """A correct user step that, at step `hang_at`, calls on_hang() (default: an endless busy loop)."""
    calls = [0]

    def train_step(model: Any, batch: Any, loss_fn: Any, optimizer: Any) -> Any:
        calls[0] += 1
        x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if calls[0] == hang_at:
            if on_hang is not None:
                on_hang()
            else:
                while True:  # an endless loop that also swallows Exception: the limit still stops it
                    try:
                        pass
                    except Exception:  # noqa: BLE001
                        pass
        return loss.detach()

    return train_step


def test_the_default_limit_is_a_minute_and_can_be_set_for_a_block() -> None:
    assert step_limit().seconds == DEFAULT_STEP_SECONDS == 60.0
    with step_time_limit(2.5, heartbeat=None):
        assert (step_limit().seconds, step_limit().heartbeat) == (2.5, None)
    assert step_limit().seconds == DEFAULT_STEP_SECONDS


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, True, "5"])
def test_an_invalid_limit_is_bad_input(seconds: Any) -> None:
    with pytest.raises(UserError, match="the step time limit must be a positive number of seconds"):
        with step_time_limit(seconds):
            pass


def test_a_hung_step_is_stopped_and_reported_where_it_hung(make_spec: Any) -> None:
    spec = make_spec(train_step=stepping(hang_at=3))
    with step_time_limit(0.3):
        report = run_checks(spec, ["parameter-updates", "loss-decreases"])
    finding = report.checks[0].findings[0]
    assert finding.message.startswith(
        "parameter-updates: step 3 ran longer than 0.3 s (stopped at tests/engine/test_step_limit.py:"
    )
    assert finding.location is not None and finding.location.file.endswith("test_step_limit.py")
    assert "raise the limit (--step-timeout)" in finding.message
    assert report.checks[1].skipped and report.exit_code == 1


def test_a_step_outside_the_main_thread_is_reported_when_it_returns(make_spec: Any) -> None:
    """No SIGALRM off the main thread: a step that overran is still a finding once it returns."""
    spec = make_spec(train_step=stepping(hang_at=2, on_hang=lambda: time.sleep(0.6)))
    out: dict[str, Any] = {}

    def run() -> None:
        with step_time_limit(0.2):
            out["report"] = run_checks(spec, ["parameter-updates", "loss-decreases"])

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=120)
    message = out["report"].checks[0].findings[0].message
    assert message.startswith("parameter-updates: step 2 ran longer than 0.2 s - ")  # not stopped: no "stopped at"


def test_the_limit_leaves_someone_elses_timer_alone(make_spec: Any) -> None:
    """An ITIMER_REAL already armed (pytest-timeout's signal method) is not replaced by the step's."""
    import signal

    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timers here")
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 300)
    try:
        with step_time_limit(30):
            report = run_checks(make_spec(train_step=stepping()), ["parameter-updates"])
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert report.exit_code == 0 and 0 < remaining <= 300 and not fired


def test_a_long_step_sends_a_heartbeat(make_spec: Any) -> None:
    """The step waits until the heartbeat arrives (the limit is the safety net), so no timing is assumed."""
    beat = threading.Event()
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if "still running" in line:
            beat.set()

    def wait_for_the_heartbeat() -> None:
        assert beat.wait(timeout=60)

    spec = make_spec(train_step=stepping(hang_at=2, on_hang=wait_for_the_heartbeat))
    with step_time_limit(120, heartbeat=0.05):
        report = run_checks(spec, ["parameter-updates", "loss-decreases"], progress=progress)
    assert report.exit_code == 0
    assert any(line.startswith("step 2 still running after ") and line.endswith("(limit 120 s)") for line in lines)


def test_the_harness_removes_its_checkpoints(make_spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint the harness wrote goes with the harness, even when no check removed it (Ctrl-C mid-suite)."""
    from ci_checks.engine import harness as _harness

    monkeypatch.setattr(_harness, "IN_MEMORY_CHECKPOINT_BYTES", 0)  # a checkpoint too large for memory: a file
    harness = Harness(make_spec(), device="cpu")
    session = Session(harness, {"memorization": {}}, needs={"x": RunNeeds(min_steps=3, checkpoint_step=2)})
    path = session.main_run().checkpoint_path
    assert path is not None and os.path.exists(path)
    del session, harness
    gc.collect()
    assert not os.path.exists(path)


def test_step_timeout_is_a_finding_not_an_error_of_the_kit(make_spec: Any) -> None:
    assert issubclass(StepTimeout, Exception)
    harness = Harness(make_spec(train_step=stepping(hang_at=1)), device="cpu")
    model, optimizer = harness.build()
    with step_time_limit(0.2), pytest.raises(StepTimeout) as raised:
        harness.step(model, optimizer, 1)
    assert raised.value.describe().startswith("step 1 ran longer than 0.2 s")
