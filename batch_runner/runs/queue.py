"""The ad-hoc queue's operations (SPEC 10): add, find, remove, stop, pause.

Ad-hoc runs and runs of named jobs share one table and one executor; this module only adds
the operations users call by hand. Draining is ``drain.drain_due`` for every kind of run.
"""

from __future__ import annotations

import time

from batch_runner.errors import NotFound, OperationFailed, StorageError, UsageError
from batch_runner.runs.context import RunnerContext, new_run_id
from batch_runner.state.wakeup import poke

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ADHOC_JOB_NAME = "adhoc"


def adhoc_spec(command: list[str], timeout: float) -> dict[str, Any]:
    """What an ad-hoc command run executes: one argument may hold shell syntax, several are argv."""
    return {
        "type": "command",
        "command": command[0] if len(command) == 1 else list(command),
        "shell": "auto",
        "cwd": None,
        "env": {},
        "timeout": timeout,
        "backoff": "exponential",
        "backoff_seconds": 30.0,
        "notify_after": None,
        "ping_url": None,
        "http": None,
    }


def add(
    ctx: RunnerContext,
    spec: dict[str, Any],
    *,
    priority: int = 0,
    due_at: float | None = None,
    max_attempts: int = 1,
    label: str | None = None,
    lane: str = "default",
    tags: list[str] | None = None,
    wake: bool = True,
) -> str:
    """Persist a pending run; durable once this returns (the store syncs every commit).

    ``wake=False`` within a caller's transaction: the caller wakes the scheduler after its
    commit (``state.wakeup.poke``), or the scheduler would look before the run is there."""
    now = time.time()
    run = {
        "job_name": label or ADHOC_JOB_NAME,
        "kind": "adhoc",
        "spec": spec,
        "trigger": "queue",
        "priority": priority,
        "status": "pending",
        "max_attempts": max_attempts,
        "due_at": now if due_at is None else due_at,
        "created_at": now,
        "label": label,
        "lane": lane,
        "tags": tags,
    }
    for tries_left in (2, 1, 0):
        run_id = new_run_id(now)
        try:
            ctx.store.insert_run({"run_id": run_id, **run})
            break
        except StorageError as exc:
            # 3 random bytes a second: at hundreds of runs a second an id is drawn twice now
            # and then; the database says so (its unique constraint) and another is drawn.
            # (A cluster's database names the key: runs_pkey.)
            taken = "UNIQUE constraint failed: runs.run_id" in str(exc) or "runs_pkey" in str(exc)
            if not tries_left or not taken:
                raise
    if wake:
        poke(ctx.layout.log_dir)
    return run_id


def find(ctx: RunnerContext, run_id: str) -> dict[str, Any]:
    """The run with this id (or unique id prefix); NotFound (exit 3) otherwise."""
    matches = ctx.store.find_runs(run_id)
    exact = [m for m in matches if m["run_id"] == run_id]
    if exact:
        return exact[0]
    if not matches:
        raise NotFound(f"no run with id {run_id!r}; `batch_runner queue list --all` shows ids")
    if len(matches) > 1:
        raise UsageError(f"run id {run_id!r} is ambiguous; give more of it")
    return matches[0]


def remove(ctx: RunnerContext, run_id: str) -> dict[str, Any]:
    """A waiting run (pending, or reserved and not started yet) leaves the queue
    (``canceled``, or as its last attempt ended when it was waiting for a retry); a running or
    finished one is refused."""
    from batch_runner.runs.endings import end_if_waiting

    status, run = end_if_waiting(ctx, find(ctx, run_id), "canceled: removed from the queue")
    if status is not None:
        return run
    _refuse_if_ended(ctx, run)
    if run["status"] == "running":
        raise OperationFailed(
            f"run {run['run_id']} is running; use `batch_runner stop {run['run_id']}` to stop it"
        )
    if run["status"] == "reserved":  # a cluster's worker has fetched it: it starts now
        raise OperationFailed(
            f"run {run['run_id']} is starting on a worker; use `batch_runner stop "
            f"{run['run_id']}` to stop it once it runs"
        )
    raise OperationFailed(f"run {run['run_id']} has already finished ({run['status']})")


def stop(ctx: RunnerContext, target: str) -> dict[str, Any]:
    """Ask the running attempt of a run (by id) or of a job (by name) to stop; a waiting one
    (pending, or reserved and not started yet) is canceled."""
    from batch_runner.runs.endings import end_if_waiting
    from batch_runner.runs.recovery import reap_if_free

    try:
        run = _running_run_of_job(ctx, target) or find(ctx, target)
    except NotFound as exc:
        import difflib

        close = difflib.get_close_matches(target, [job.name for job in ctx.config.jobs], n=1)
        if not close:
            raise
        raise NotFound(f"no job or run {target!r}; did you mean the job {close[0]!r}?") from exc
    seen = run["status"]
    status, run = end_if_waiting(ctx, run, "canceled: stopped before it started")
    if status is not None:
        return run
    if seen == "reserved" and run["status"] == "interrupted":
        return {**run, "orphaned": True}  # its runner died starting it: recovery ended it
    if run["status"] == "running" and reap_if_free(ctx):
        # Nobody held the executor: its runner was gone, nothing would have seen the flag
        # (unless this run ended on its own meanwhile and another one was the orphan).
        now = ctx.store.get_run(run["run_id"]) or run
        if now["status"] == "interrupted":
            return {**now, "orphaned": True}
        run = now
    _refuse_if_ended(ctx, run)
    if run["status"] != "running" or not ctx.store.request_stop(run["run_id"]):
        raise OperationFailed(
            f"run {run['run_id']} of {run['job_name']} is not running ({run['status']})"
        )
    return run


def _refuse_if_ended(ctx: RunnerContext, run: dict[str, Any]) -> None:
    """A run whose row says running may have just ended: its line says so first."""
    if run["status"] != "running":
        return
    from batch_runner.runs.endings import ended_meanwhile

    ended = ended_meanwhile(ctx, run)
    if ended is not None:
        raise OperationFailed(f"run {run['run_id']} has already finished ({ended})")


def _running_run_of_job(ctx: RunnerContext, name: str) -> dict[str, Any] | None:
    active = ctx.store.active_run_of_job(name)
    if active is None and ctx.config.job(name) is not None:
        raise OperationFailed(f"job {name!r} is not running")
    return active


def set_paused(ctx: RunnerContext, paused: bool) -> None:
    ctx.store.set_paused(paused)
    if not paused:
        poke(ctx.layout.log_dir)
