"""The hand-off from the scheduler's clock to its executor: a heads-up, one write, a poke.

A run's start is late by whatever lies between its due time and the claim: the main thread's
wake-up, the enqueue, the executor thread's wake-up and its lock. The scheduler wakes a moment
early to warn the executor, which takes the lock and waits; the enqueue is one write (a second
one would collide with the claim, and SQLite's busy handler sleeps a millisecond or more).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import job, wait_for, write_config

from batch_runner.config.loader import load_config
from batch_runner.context import RunnerContext
from batch_runner.dispatch import Dispatcher
from batch_runner.locks import FileLock
from batch_runner.runner import enqueue_job
from batch_runner.scheduler import HEADS_UP_SECONDS, Scheduler
from batch_runner.timefmt import iso

T0 = 1_790_000_000.0  # a fixed instant (2026-09-21)


def scheduler_at(project: Path, clock: list[float]) -> Scheduler:
    path = write_config(project, [job("tick", "true", schedule_time="60")])
    sched = Scheduler(path, project, clock=lambda: clock[0], rand=lambda: 0.0,
                      monotonic=lambda: 0.0)
    sched._plan_all(start_up=True)
    return sched


def test_a_run_is_queued_with_its_next_run_in_one_write_then_the_executor_is_poked(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sched = scheduler_at(project, [T0])
    store = sched.ctx.store
    writes: list[str] = []
    transaction = store.transaction

    def counted_transaction():
        writes.append("write")
        return transaction()

    monkeypatch.setattr(store, "transaction", counted_transaction)
    seen: list[tuple[str, str]] = []

    def on_queued() -> None:
        [run] = store.runs_with_status("pending")
        seen.append((run["scheduled_for"], store.job_states()["tick"]["next_run"]))

    assert sched._fire_due(T0 + 60.5, on_queued=on_queued) == 1
    assert seen == [(iso(T0 + 60), iso(T0 + 120))]  # both in the store when poked
    assert writes == ["write"]
    assert sched.plans["tick"].scheduled_for == T0 + 120


def test_a_skipped_occurrence_still_remembers_the_next_run_and_pokes_nobody(
    project: Path,
) -> None:
    sched = scheduler_at(project, [T0])
    pokes: list[str] = []
    assert sched._fire_due(T0 + 60, on_queued=lambda: pokes.append("poke")) == 1
    assert sched._fire_due(T0 + 120, on_queued=lambda: pokes.append("poke")) == 1
    assert pokes == ["poke"]  # the first run still waits: the second occurrence is skipped
    assert sched.ctx.store.job_states()["tick"]["next_run"] == iso(T0 + 180)


class NoWatch:
    poll_interval = None


class HeadsUps:
    def __init__(self) -> None:
        self.expected: list[float] = []

    def expect(self, at: float) -> None:
        self.expected.append(at)


def test_the_heads_up_comes_once_a_moment_before_and_the_rest_is_slept_to_the_due_time(
    project: Path,
) -> None:
    clock = [T0]
    sched = scheduler_at(project, clock)
    executor = HeadsUps()
    sched._heads_up(executor)
    assert executor.expected == []
    assert sched._sleep_for(NoWatch()) == pytest.approx(60 - HEADS_UP_SECONDS, abs=1e-6)
    clock[0] = T0 + 60 - HEADS_UP_SECONDS * 0.9  # woken by that sleep, a little late
    sched._heads_up(executor)
    sched._heads_up(executor)  # woken again meanwhile (a poke, an edit): no second heads-up
    assert executor.expected == [T0 + 60]
    assert sched._sleep_for(NoWatch()) == pytest.approx(HEADS_UP_SECONDS * 0.9, abs=1e-6)


def test_the_firing_worked_out_at_the_heads_up_is_used_while_it_stands(project: Path) -> None:
    clock = [T0 + 60 - HEADS_UP_SECONDS / 2]
    sched = scheduler_at(project, [T0])
    sched.clock = lambda: clock[0]
    sched._heads_up(HeadsUps())
    prepared = sched._prepared
    assert prepared is not None and prepared.next_run == iso(T0 + 120)
    assert sched._fire_due(T0 + 60.0002) == 1
    assert sched.plans["tick"] is prepared.following
    # A firing prepared for an occurrence fired only after the one following it: planned anew.
    clock[0] = T0 + 120 - HEADS_UP_SECONDS / 2
    sched._heads_up(HeadsUps())
    stale = sched._prepared
    assert stale is not None and stale.following.scheduled_for == T0 + 180
    assert sched._fire_due(T0 + 185) == 1
    assert sched.plans["tick"].scheduled_for == T0 + 240


def test_after_a_heads_up_the_executor_runs_the_run_without_holding_its_lock_ahead(
    project: Path,
) -> None:
    config = load_config(write_config(project, [job("tick", "true")]), project)
    ctx = RunnerContext(config=config)
    other = FileLock(ctx.layout.executor_lock)  # a `run-job --no-wait` from cron, say
    dispatcher = Dispatcher(lambda: config)
    dispatcher.start()
    try:
        dispatcher.expect(time.time() + 1.0)
        time.sleep(0.1)
        assert not dispatcher.busy
        assert other.acquire(wait=False)  # not turned away before the run is there
        other.release()
        run_id = enqueue_job(ctx, config.job("tick"), "schedule")
        dispatcher.poke()
        wait_for(lambda: ctx.store.get_run(run_id)["status"] == "success", 10)
        wait_for(lambda: other.acquire(wait=False), 5)  # and let go after it
        other.release()
    finally:
        dispatcher.stop_new()
        assert dispatcher.join(5)
