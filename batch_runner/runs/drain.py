"""The one path every run takes: enqueue, wait for the executor, claim, execute, record.

Runs live in the state database as a queue. Whoever holds the executor lock (the scheduler, a
``run-job`` from cron, a queue worker) claims the next due run in order of priority, due time and
arrival, and executes it; so one run at a time across every process on a log dir, in order.
"""

from __future__ import annotations

import time

from batch_runner.runs.context import RunnerContext
from batch_runner.runs.execute import Observer, execute_run
from batch_runner.runs.interrupt import Interrupter, WaitInterrupted
from batch_runner.state.locks import FileLock
from batch_runner.state.store import FINISHED_STATUSES

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def drain_due(
    ctx: RunnerContext,
    interrupter: Interrupter | None,
    until_run: str | None = None,
    observer: Observer | None = None,
) -> None:
    """Run due runs one by one while holding the executor lock; stop after ``until_run`` ends.

    While the queue is paused only ``until_run`` (a foreground ``run-job``) may start.
    """
    _reap_orphans(ctx)
    claim = _Claimer(ctx, interrupter, until_run)
    run = claim()
    while run is not None:
        if until_run is not None and run["run_id"] == until_run:
            execute_run(ctx, run, interrupter, observer)
            return
        # The next claim shares the commit that ends this run, unless ending it sends a
        # heartbeat or a notice: the next run must not wait claimed while those go out.
        quiet_end = run["kind"] != "job" and not run["spec"].get("ping_url")
        # Only a first attempt is claimed so: one put back (below) is then exactly as it was.
        _, run = execute_run(
            ctx, run, interrupter, observer, claim.first_attempt if quiet_end else None
        )
        if run is None:
            run = claim()  # the queue's end, a retry next, or an end that was not quiet
        elif interrupter and interrupter.stop_new:
            ctx.store.unclaim(run["run_id"], ctx.pid)  # a signal came after the claim
            return


class _Claimer:
    """The next claim of a drain: nothing once a signal said to start nothing new."""

    def __init__(
        self, ctx: RunnerContext, interrupter: Interrupter | None, until_run: str | None
    ) -> None:
        self.ctx, self.interrupter, self.until_run = ctx, interrupter, until_run

    def __call__(self, first_attempt_only: bool = False) -> dict[str, Any] | None:
        if self.interrupter and self.interrupter.stop_new:
            return None
        return self.ctx.store.claim_next(
            time.time(),
            self.ctx.pid,
            self.ctx.host,
            foreground_run_id=self.until_run,
            first_attempt_only=first_attempt_only,
        )

    def first_attempt(self) -> dict[str, Any] | None:
        return self(first_attempt_only=True)


def drain_one(ctx: RunnerContext, interrupter: Interrupter | None) -> str | None:
    """One attempt of the next due run (``queue run``); None when nothing is due or paused.

    The caller holds the executor lock.
    """
    _reap_orphans(ctx)
    run = ctx.store.claim_next(time.time(), ctx.pid, ctx.host)
    return None if run is None else execute_run(ctx, run, interrupter)[0]


def run_to_completion(
    ctx: RunnerContext, run_id: str, *, lock: FileLock, interrupter: Interrupter | None = None
) -> dict[str, Any]:
    """Wait for the executor, run what is due ahead of ``run_id``, then ``run_id`` and its retries.

    Returns the run as it ended (still ``pending`` only if a signal cut the wait short).
    """
    run = ctx.store.get_run(run_id)
    while True:
        if run is None or run["status"] in FINISHED_STATUSES:
            return run or {}
        if interrupter and interrupter.stop_new:
            return run
        acquire_interruptibly(lock, interrupter)
        try:
            drain_due(ctx, interrupter, until_run=run_id)
        finally:
            lock.release()
        run = ctx.store.get_run(run_id)
        if run is not None and run["status"] == "pending" and _sleep_until_due(run, interrupter):
            run = ctx.store.get_run(run_id)


def acquire_interruptibly(lock: FileLock, interrupter: Interrupter | None) -> bool:
    """Wait for the executor lock; a signal handled by ``interrupter`` ends the wait."""
    if interrupter is None or lock.held:
        return lock.acquire()
    interrupter.in_blocking_wait = True
    try:
        if interrupter.stop_new:
            raise WaitInterrupted("interrupted before the executor was free")
        return lock.acquire(wait=True)
    finally:
        interrupter.in_blocking_wait = False


def _sleep_until_due(run: dict[str, Any], interrupter: Interrupter | None) -> bool:
    """A retry waiting out its backoff does not hold the executor: sleep with the lock released
    (a second at most, then look again); False when it is due already."""
    delay = min(max(run["due_at"] - time.time(), 0.0), 1.0)
    if delay <= 0:
        return False
    if interrupter is None:
        time.sleep(delay)
    else:
        interrupter.sleep(delay)
    return True


def _reap_orphans(ctx: RunnerContext) -> None:
    """Before a claim: runs left ``running`` by a dead runner (the caller holds the lock)."""
    running = ctx.store.runs_with_status("running")
    if running:  # rare: recovery's code is loaded only then, off run-job's usual path
        from batch_runner.runs.recovery import reap_orphans

        reap_orphans(ctx, ctx.config.settings.kill_grace, running)
