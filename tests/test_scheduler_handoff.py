"""The hand-off from the scheduler's clock to its executor: one write, a poke, ahead of time.

A run's start is late by whatever lies between its due time and the claim. The scheduler
queues each occurrence a moment ahead with its due time, in one write (a second one would
collide with the claim, and SQLite's busy handler sleeps a millisecond or more), and pokes; the
executor thread sleeps to the due time and claims it then, never before.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import job, wait_for, write_config

from batch_runner.config.loader import load_config
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.enqueue import enqueue_job
from batch_runner.scheduling.daemon import QUEUE_AHEAD_SECONDS, Scheduler
from batch_runner.scheduling.dispatch import Dispatcher
from batch_runner.state.locks import FileLock
from batch_runner.timefmt import iso

T0 = 1_790_000_000.0  # a fixed instant (2026-09-21)


def scheduler_at(project: Path, clock: list[float]) -> Scheduler:
    path = write_config(project, [job("tick", "true", schedule_time="60")])
    sched = Scheduler(
        path, project, clock=lambda: clock[0], rand=lambda: 0.0, monotonic=lambda: 0.0
    )
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


def test_an_occurrence_is_queued_a_moment_ahead_with_its_due_time(project: Path) -> None:
    clock = [T0]
    sched = scheduler_at(project, clock)
    assert sched._sleep_for(NoWatch()) == pytest.approx(60 - QUEUE_AHEAD_SECONDS, abs=1e-6)
    assert sched._fire_due(T0 + 60 - 2 * QUEUE_AHEAD_SECONDS) == 0  # not that early
    clock[0] = T0 + 60 - QUEUE_AHEAD_SECONDS * 0.9  # woken by that sleep, a little late
    before = time.time()
    assert sched._fire_due(clock[0]) == 1
    [run] = sched.ctx.store.runs_with_status("pending")
    # Due in real time as far ahead as the occurrence is on the scheduler's clock.
    ahead = QUEUE_AHEAD_SECONDS * 0.9
    assert before + ahead <= run["due_at"] <= time.time() + ahead
    assert run["scheduled_for"] == iso(T0 + 60)
    assert sched.ctx.store.job_states()["tick"]["next_run"] == iso(T0 + 120)
    assert sched.plans["tick"].scheduled_for == T0 + 120  # planned as of the due time


def test_a_run_queued_ahead_starts_at_its_due_time_without_another_poke(project: Path) -> None:
    config = load_config(write_config(project, [job("tick", "true")]), project)
    ctx = RunnerContext(config=config)
    other = FileLock(ctx.layout.executor_lock)  # a `run-job --no-wait` from cron, say
    dispatcher = Dispatcher(lambda: config)
    dispatcher.start()
    try:
        due = time.time() + 1.0
        run_id = enqueue_job(ctx, config.job("tick"), "schedule", due_at=due)
        dispatcher.poke()
        time.sleep(0.1)  # the poke is taken: the run is found not due, the thread sleeps to it
        busy, free = dispatcher.busy, other.acquire(wait=False)
        status = ctx.store.get_run(run_id)["status"]
        if time.time() < due:  # still ahead of the run (a loaded machine may keep us past it)
            assert status == "pending"
            assert not busy  # the lock is not held ahead of the run
            assert free  # so a run-job is not turned away before it
        other.release()
        # The idle re-check is a minute away: only the due time itself can start it now.
        wait_for(lambda: ctx.store.get_run(run_id)["status"] == "success", 10)
        assert ctx.store.get_run(run_id)["started_at"] >= due
        wait_for(lambda: other.acquire(wait=False), 5)  # and let go after it
        other.release()
    finally:
        dispatcher.stop_new()
        assert dispatcher.join(5)
