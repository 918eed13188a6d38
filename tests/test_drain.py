"""Draining the queue: the end of one run and the claim of the next share a commit.

A run claimed in that commit has not started yet; whatever stops the drain before it starts
(an error on the way, a signal) puts it back in the queue as it was, instead of leaving it
``running`` for the next runner to mark ``interrupted``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import job, write_config

from batch_runner.config.loader import load_config
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.drain import drain_due
from batch_runner.runs.interrupt import Interrupter
from batch_runner.runs.queue import add, adhoc_spec
from batch_runner.state.slots import Slot


def queued(project: Path, count: int) -> tuple[RunnerContext, list[str]]:
    config = load_config(write_config(project, [job("tick", "true")]), project)
    ctx = RunnerContext(config=config)
    return ctx, [add(ctx, adhoc_spec(["true"], 60.0)) for _ in range(count)]


_held: dict[str, Slot] = {}  # by lock file: each test's project has its own


def slot_of(ctx: RunnerContext) -> Slot:
    """The default lane's slot, held as a runner holds it while it drains."""
    slot = _held.setdefault(ctx.layout.executor_lock, Slot(ctx.layout, "default", 0))
    slot.acquire()
    return slot


def failing_on(failing_event: str):
    """An observer whose writes fail at ``failing_event``, as when a worker's stdout is gone."""

    def observer(event: str, run: dict[str, Any], *_: object) -> None:
        if event == failing_event:
            raise BrokenPipeError("the worker's stdout is gone")

    return observer


def status_of(ctx: RunnerContext, run_id: str) -> tuple[str, int]:
    run = ctx.store.get_run(run_id)
    assert run is not None
    return run["status"], run["attempt"]


def test_queued_runs_drain_in_order_each_once(project: Path) -> None:
    ctx, ids = queued(project, 5)
    order: list[str] = []
    drain_due(
        ctx,
        None,
        slot_of(ctx),
        observer=lambda event, run, *_: order.append(f"{event} {run['run_id']}"),
    )
    assert order == [f"{event} {run_id}" for run_id in ids for event in ("start", "end")]
    assert [status_of(ctx, run_id) for run_id in ids] == [("success", 1)] * 5


def test_an_error_after_a_run_ends_puts_the_runs_it_reserved_back(project: Path) -> None:
    """A run's end line is said once the next run is spawned (runs.handoff): the error of
    saying it (a worker's stdout gone) ends the drain after that run, and the runs reserved
    behind it go back to the queue as they were."""
    ctx, (first, second, third) = queued(project, 3)
    with pytest.raises(BrokenPipeError):
        drain_due(ctx, None, slot_of(ctx), observer=failing_on("end"))
    assert status_of(ctx, first) == ("success", 1)
    assert status_of(ctx, second) == ("success", 1)
    assert status_of(ctx, third) == ("pending", 0)  # not `running` without a process
    drain_due(ctx, None, slot_of(ctx))
    assert status_of(ctx, third) == ("success", 1)


def test_a_signal_during_a_run_starts_nothing_new(project: Path) -> None:
    ctx, (first, second) = queued(project, 2)
    interrupter = Interrupter(ctx)

    def observer(event: str, run: dict[str, Any], *_: object) -> None:
        if event == "start":
            interrupter.stop_new = True  # as SIGTERM to the scheduler sets it

    drain_due(ctx, interrupter, slot_of(ctx), observer=observer)
    assert status_of(ctx, first) == ("success", 1)
    assert status_of(ctx, second) == ("pending", 0)


def test_a_paused_queue_starts_only_the_foreground_run(project: Path) -> None:
    ctx, (first, second) = queued(project, 2)
    ctx.store.set_paused(True)
    drain_due(ctx, None, slot_of(ctx))
    assert status_of(ctx, first) == ("pending", 0)
    drain_due(
        ctx, None, slot_of(ctx), until_run=second
    )  # a foreground run-job's run, not first in line
    assert status_of(ctx, first) == ("pending", 0)
    assert status_of(ctx, second) == ("success", 1)
    ctx.store.set_paused(False)
    drain_due(ctx, None, slot_of(ctx))
    assert status_of(ctx, first) == ("success", 1)


def test_a_quick_run_has_its_process_group_and_log_file_recorded_with_its_end(
    project: Path,
) -> None:
    ctx, (run_id,) = queued(project, 1)
    drain_due(ctx, None, slot_of(ctx))
    run = ctx.store.get_run(run_id)
    assert run is not None and run["pgid"] and Path(run["log_file"]).is_file()


def test_a_retry_reserved_next_and_put_back_keeps_its_last_attempt(
    project: Path,
) -> None:
    import time

    ctx, (first,) = queued(project, 1)
    now = time.time()
    ctx.store.insert_run(
        {
            "run_id": "retry-1",
            "job_name": "adhoc",
            "kind": "adhoc",
            "spec": adhoc_spec(["true"], 60.0),
            "trigger": "queue",
            "status": "pending",
            "attempt": 1,
            "max_attempts": 2,
            "due_at": now,
            "created_at": now + 1,
            "started_at": now - 5,
            "ended_at": now - 4,
            "exit_code": 2,
            "error": "exit 2: boom",
            "log_file": "/somewhere/retry-1.log",
            "pgid": 4242,
            "attempt_status": "error",
        }
    )
    interrupter = Interrupter(ctx)

    def observer(event: str, run: dict[str, Any], *_: object) -> None:
        if event == "start":
            interrupter.stop_new = True  # a signal while the first runs: its next goes back

    drain_due(ctx, interrupter, slot_of(ctx), observer=observer)
    assert status_of(ctx, first) == ("success", 1)
    retry = ctx.store.get_run("retry-1")
    assert retry is not None
    assert (
        retry["status"],
        retry["attempt"],
        retry["error"],
        retry["exit_code"],
        retry["log_file"],
    ) == ("pending", 1, "exit 2: boom", 2, "/somewhere/retry-1.log")
    drain_due(ctx, None, slot_of(ctx))
    assert status_of(ctx, "retry-1") == ("success", 2)


def test_a_start_line_that_cannot_be_written_leaves_the_started_run_to_finish(
    project: Path,
) -> None:
    ctx, (first, second) = queued(project, 2)
    with pytest.raises(BrokenPipeError):
        drain_due(ctx, None, slot_of(ctx), observer=failing_on("start"))
    assert status_of(ctx, first) == ("success", 1)  # ran and was recorded, not killed
    assert status_of(ctx, second) == ("pending", 0)
