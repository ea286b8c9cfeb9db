"""The session trains once for every selected check: as long as the longest need, stopping when a check may stop it."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from ci_checks.engine.harness import Harness
from ci_checks.engine.session import DEFAULT_MAX_SECONDS, RunNeeds, Session


def session(make_spec: Any, **needs: RunNeeds) -> Session:
    harness = Harness(make_spec(), device="cpu", seed=0)
    harness.preflight()
    return Session(harness, settings={}, needs=needs)


def test_the_longest_need_sets_the_length(make_spec: Any) -> None:
    run = session(make_spec, a=RunNeeds(min_steps=3), b=RunNeeds(min_steps=7, max_steps=5)).main_run()
    assert len(run.losses) == 7  # the budget is never below a check's minimum
    assert run.stop_reason == "step budget"


def test_a_stop_condition_ends_the_run_only_after_every_minimum(make_spec: Any) -> None:
    def stop_at_once(harness: Harness) -> Any:
        return lambda loss, fit: True

    run = session(
        make_spec, early=RunNeeds(min_steps=1, max_steps=50, stop_when=stop_at_once), late=RunNeeds(min_steps=6)
    ).main_run()
    assert run.steps_to_memorize == 1 and len(run.losses) == 6 and run.stop_reason == "memorized"


def test_kept_states_and_the_checkpoint_come_from_the_needs(make_spec: Any) -> None:
    s = session(
        make_spec,
        a=RunNeeds(min_steps=4, keep_states=(2,)),
        b=RunNeeds(min_steps=4, keep_states=(4, 2), checkpoint_step=3),
    )
    run = s.main_run()
    assert set(run.state_at) == {2, 3, 4}  # 3: saved with the checkpoint
    assert run.checkpoint_bytes is not None and run.checkpoint_path is None  # small: kept in memory, no file
    assert s.main_run() is run  # one run, shared


def test_a_large_checkpoint_goes_to_a_file_and_resumes_from_it(make_spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_checks.engine import harness

    monkeypatch.setattr(harness, "IN_MEMORY_CHECKPOINT_BYTES", 0)
    s = session(make_spec, b=RunNeeds(min_steps=5, keep_states=(5,), checkpoint_step=3))
    run = s.main_run()
    assert run.checkpoint_bytes is None and run.checkpoint_path is not None and os.path.getsize(run.checkpoint_path)
    losses, loaded, final = s.harness.resume(run, 3, 2)
    assert losses == run.losses[3:5]
    assert all(torch.equal(final[k], run.state_at[5][k]) for k in final)
    os.remove(run.checkpoint_path)  # the checkpoint check owns it in a suite


def test_no_needs_trains_one_step_with_the_default_cap(make_spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    original = Harness.run

    def spy(self: Harness, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(Harness, "run", spy)
    run = session(make_spec).main_run()
    assert len(run.losses) == 1
    assert seen["max_seconds"] == DEFAULT_MAX_SECONDS and seen["done"] is None and seen["checkpoint_step"] is None
