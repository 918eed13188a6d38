"""Accepting a run of a named job: frozen spec, one waiting or running run per job (SPEC 4)."""

from __future__ import annotations

import os
import time

from batch_runner.config.spec import JobSpec
from batch_runner.runs.context import RunnerContext, new_run_id
from batch_runner.runs.disabling import held_back, notify_after_of
from batch_runner.timefmt import parse_iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def job_run_spec(job: JobSpec) -> dict[str, Any]:
    """What a run of ``job`` executes, frozen when the run is accepted."""
    return {
        "type": job.type,
        "command": job.command,
        "shell": job.shell,
        "cwd": job.cwd,
        "env": dict(job.env or {}),
        "timeout": job.timeout,
        "backoff": job.backoff,
        "backoff_seconds": job.backoff_seconds,
        "notify_after": notify_after_of(job),
        "ping_url": job.ping_url,
        "http": job.http._asdict() if job.http else None,
    }


def enqueue_job(
    ctx: RunnerContext,
    job: JobSpec,
    trigger: str,
    *,
    due_at: float | None = None,
    scheduled_for: str | None = None,
    next_run: str | None = None,
    decide: Callable[[], bool] | None = None,
) -> str | None:
    """Accept a run of ``job``; None (and a ``skipped`` record) if one already waits or runs.

    ``next_run``, the scheduler's following occurrence, is remembered in the same write. None
    (and no record: it would be one per occurrence) for a scheduler's occurrence of a job its
    failures disabled (``runs.disabling``). ``decide``, asked first in the same transaction:
    whether this occurrence is ours (a cluster's other schedulers decide it too); None and
    nothing written when it is not.
    """
    now = time.time()
    with ctx.store.transaction():
        if decide is not None and not decide():
            return None
        if next_run is not None:
            ctx.store.set_next_run(job.name, next_run)
        if held_back(ctx, job, trigger):
            return None
        active = ctx.store.active_run_of_job(job.name)
        if active is None or _runner_is_gone(ctx, active):
            return _insert(ctx, job, trigger, now, due_at, scheduled_for)
        if scheduled_for is not None and decide is not None:
            ctx.store.occurrence_skipped(job.name, parse_iso(scheduled_for))
    from batch_runner.runs.endings import record_skip  # only when a run is turned away

    reason = f"job {job.name!r} is already {active['status']} (run {active['run_id']})"
    record_skip(
        ctx, job.name, trigger, reason, max_attempts=job.max_attempts, scheduled_for=scheduled_for
    )
    return None


def _insert(
    ctx: RunnerContext,
    job: JobSpec,
    trigger: str,
    now: float,
    due_at: float | None,
    scheduled_for: str | None,
) -> str:
    # A scheduled run is known by its occurrence: the 18:04:00 run queued a little ahead gets
    # an id of 18:04:00, not 18:03:59, and the run of midnight an id of its own day.
    run_id = new_run_id(parse_iso(scheduled_for) if scheduled_for else now)
    ctx.store.insert_run(
        {
            "run_id": run_id,
            "job_name": job.name,
            "kind": "job",
            "spec": job_run_spec(job),
            "trigger": trigger,
            "priority": job.priority,
            "status": "pending",
            "max_attempts": job.max_attempts,
            "due_at": now if due_at is None else due_at,
            "scheduled_for": scheduled_for,
            "created_at": now,
            "lane": job.lane,
        }
    )
    return run_id


def _runner_is_gone(ctx: RunnerContext, run: dict[str, Any]) -> bool:
    """Whether ``run`` only looks active: its runner died; it is reaped before the next claim."""
    if ctx.clustered:
        return False  # a cluster's dead runners are found by their heartbeats (cluster.sweep)
    if run["status"] != "running" or run["host"] != ctx.host or not run["owner_pid"]:
        return False
    try:
        os.kill(run["owner_pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
