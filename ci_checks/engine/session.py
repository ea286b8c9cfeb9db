"""One spec under test: the harness, the merged settings, and the training run the selected checks share."""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ci_checks.engine.harness import Harness, Run
    from ci_checks.results import CheckResult, Location

# The per-step time limit (a safety cap, like the run's): a step that runs longer is stopped and reported as a finding
# ("step 12 ran longer than 60 s"). Steps of a smoke test on one small batch take milliseconds to seconds.
DEFAULT_STEP_SECONDS = 60.0
HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True)
class StepLimit:
    """How long one training step may run, how often a long step says it is still running, and whether a step
    stuck in native code may end the process (the command line only)."""

    seconds: float | None = DEFAULT_STEP_SECONDS
    heartbeat: float | None = HEARTBEAT_SECONDS
    hard_stop: bool = False


_STEP_LIMIT: contextvars.ContextVar[StepLimit] = contextvars.ContextVar("ci_checks_step_limit", default=StepLimit())


def step_limit() -> StepLimit:
    """The step limit in force (step_time_limit sets it; DEFAULT_STEP_SECONDS otherwise)."""
    return _STEP_LIMIT.get()


@contextmanager
def step_time_limit(
    seconds: float | None, *, heartbeat: float | None = HEARTBEAT_SECONDS, hard_stop: bool = False
) -> Iterator[None]:
    """Run the block with this per-step limit (None: no limit); an invalid limit is bad input."""
    from ci_checks._errors import UserError

    for name, value in (("the step time limit", seconds), ("the heartbeat interval", heartbeat)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf
        ):
            raise UserError(f"{name} must be a positive number of seconds, got {value!r}")
    token = _STEP_LIMIT.set(StepLimit(seconds, heartbeat, hard_stop))
    try:
        yield
    finally:
        _STEP_LIMIT.reset(token)


# The shared run's wall-clock safety cap when no selected check sets one. A cap, not a budget: verdicts are decided
# by steps, and a run that reaches the cap is inconclusive, never a pass or a failure.
DEFAULT_MAX_SECONDS = 600.0

StopWhen = Callable[[float, "float | None"], bool]


@dataclass(frozen=True)
class RunNeeds:
    """What a check needs from the shared training run; the session trains once, long enough for all of them.

    min_steps: the run goes on at least this long (even after it could stop).
    max_steps: the step budget this check grants the run (the run's budget is the largest, at least min_steps).
    max_seconds: a wall-clock safety cap this check sets (the largest wins).
    stop_when: given the harness, a function of (loss, fit) that ends the run early once min_steps are done.
    keep_states: steps after which the model's state is kept for the check.
    checkpoint_step: the step after which the run writes a checkpoint (model, optimizer, RNG state).
    patience: the run stops as stalled when neither the fit nor the loss improved for this many steps (the
        smallest wins; None: never).
    """

    min_steps: int = 1
    max_steps: int = 0
    max_seconds: float | None = None
    stop_when: Callable[[Harness], StopWhen] | None = None
    keep_states: tuple[int, ...] = ()
    checkpoint_step: int | None = None
    patience: int | None = None


@dataclass
class Session:
    """The harness, merged settings per check, and each selected check's needs from the shared run."""

    harness: Harness
    settings: dict[str, dict[str, Any]]
    needs: Mapping[str, RunNeeds] = field(default_factory=dict)  # selected checks that train -> their needs
    progress: Callable[[str], None] | None = None
    reported_step_failure: bool = False
    facts: dict[str, Any] = field(default_factory=dict)  # what one check learned that a later one reads
    _run: Run | None = field(default=None, repr=False)

    def opt(self, check: str, key: str) -> Any:
        return self.settings[check][key]

    @property
    def location(self) -> Location | None:
        """Where findings about training point: the user's step if given, else the spec function."""
        return self.harness.step_location or self.harness.spec.location

    def step_failed(self, result: CheckResult) -> bool:
        """Report a training step that raised once; later checks that needed it are skipped."""
        run = self.main_run()
        if run.error is None:
            return False
        if self.reported_step_failure:
            result.skipped = True
            result.summary = f"skipped: {run.error.phase} raised (reported above)"
        else:
            self.reported_step_failure = True
            result.add("error", f"{result.check}: {run.error.describe()}", location=run.error.location or self.location)
            result.summary = f"{run.error.phase} raised"
        return True

    def main_run(self) -> Run:
        """Train once, long enough for every selected check, stopping early when a check's stop condition holds."""
        if self._run is not None:
            return self._run
        needs: Sequence[RunNeeds] = list(self.needs.values()) or [RunNeeds()]
        min_steps = max(n.min_steps for n in needs)
        max_steps = max([min_steps] + [n.max_steps for n in needs])
        caps = [n.max_seconds for n in needs if n.max_seconds is not None]
        stops = [n.stop_when(self.harness) for n in needs if n.stop_when is not None]
        checkpoints = [n.checkpoint_step for n in needs if n.checkpoint_step is not None]
        keep = tuple(sorted({s for n in needs for s in n.keep_states}))
        patiences = [n.patience for n in needs if n.patience is not None]
        last = [0.0]

        def progress(step: int, loss: float, fit: float | None) -> None:
            now = time.perf_counter()
            if self.progress is not None and now - last[0] > 1.0:
                last[0] = now
                shown = "" if fit is None else f", fit {fit:.3f}"
                self.progress(f"training step {step}/{max_steps}: loss {loss:.4g}{shown}")

        self.harness.heartbeat = self.progress
        self._run = self.harness.run(
            max_steps=max_steps,
            min_steps=min_steps,
            max_seconds=max(caps) if caps else DEFAULT_MAX_SECONDS,
            done=(lambda loss, fit: any(stop(loss, fit) for stop in stops)) if stops else None,
            checkpoint_step=min(checkpoints) if checkpoints else None,
            keep_states=keep,
            patience=min(patiences) if patiences else None,
            progress=progress,
        )
        return self._run
