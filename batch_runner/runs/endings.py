"""How a run ends without an attempt of its own: skipped, canceled, or given up while waiting.

Each still leaves its line in the results, of the same shape as an attempt's
(``finish.record_fields``) and kept for later as an attempt's is when it cannot be written;
a run given up while it waited for a retry ends its job's state, notices and heartbeat as any
finished run does.
"""

from __future__ import annotations

import time

from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.logs import get_logger
from batch_runner.runs import notices
from batch_runner.runs.context import RunnerContext, new_run_id
from batch_runner.runs.finish import append_or_keep, record_fields, update_job_state
from batch_runner.state.store import WAITING_STATUSES
from batch_runner.timefmt import iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger("batch_runner")


def record_skip(
    ctx: RunnerContext,
    job_name: str,
    trigger: str,
    reason: str,
    *,
    max_attempts: int = 1,
    scheduled_for: str | None = None,
) -> str:
    """An occurrence not run because the same job already waits or runs (SPEC 4)."""
    now = time.time()
    run_id = new_run_id(now)
    append_or_keep(
        ctx,
        record_fields(
            ctx,
            job_name=job_name,
            start_time=iso(now),
            end_time=iso(now),
            status="skipped",
            error=reason,
            run_id=run_id,
            attempt=0,
            max_attempts=max_attempts,
            duration_seconds=0.0,
            trigger=trigger,
            scheduled_for=scheduled_for,
        ),
        now,
    )
    log.info("skipped %s: %s", job_name, reason)
    return run_id


def end_if_waiting(
    ctx: RunnerContext, run: dict[str, Any], reason: str
) -> tuple[str | None, dict[str, Any]]:
    """``end_waiting_run`` for a run read a moment ago, which may have moved on since: (its
    final status, or None when it had started or finished; the run as it is now).

    A reserved run may have been started by its runner, whose row says so only once it has
    run a moment (``runs.handoff``): its slot's note tells, and it is treated as running. A
    dead runner's reserved run is settled by recovery first. A started run is never
    canceled.
    """
    for _ in range(3):  # a run seen waiting again had a whole attempt meanwhile: rare
        if run["status"] == "reserved" and not ctx.clustered:
            from batch_runner.runs.recovery import reap_if_free  # only for a reserved run

            reap_if_free(ctx)
            run = ctx.store.get_run(run["run_id"]) or run
            if run["status"] == "reserved" and reserved_run_started(ctx, run):
                # Its row says so a moment later: as it will, its next attempt, started.
                started = {"attempt": run["attempt"] + 1, "started_at": run["reserved_at"]}
                return None, {**run, "status": "running", **started}
        if run["status"] not in WAITING_STATUSES:
            return None, run
        status = end_waiting_run(ctx, run, reason)
        if status is not None:
            return status, {**run, "status": status}
        run = ctx.store.get_run(run["run_id"]) or run
    return None, run


def ended_meanwhile(ctx: RunnerContext, run: dict[str, Any]) -> str | None:
    """The status a running run's attempt ended with, if its line is written already: a
    slot's runner writes its row a moment later (``runs.handoff``)."""
    from batch_runner.state.resultsearch import find_result

    if ctx.clustered:
        return None  # a cluster's run row is written with its line, in one transaction
    since = run.get("started_at") or run.get("reserved_at")
    if not since:
        return None
    line = find_result(ctx.layout, ctx.store, run["run_id"], run["attempt"], since)
    return None if line is None else str(line["status"])


def reserved_run_started(ctx: RunnerContext, run: dict[str, Any]) -> bool:
    """Whether a reserved run has been started by its runner: its slot notes it (see
    ``runs.handoff``; reliable under the store's write lock, or once its runner is gone)."""
    from batch_runner.state.slots import noted_start

    return noted_start(ctx.layout, run["lane"], run["slot"], run["run_id"], run["attempt"] + 1)


def end_waiting_run(ctx: RunnerContext, run: dict[str, Any], reason: str) -> str | None:
    """A waiting run (pending, or reserved and not started) leaves the queue without another
    attempt; returns its final status.

    Never started: ``canceled``, with a line of its own. Waiting out a retry's backoff: the
    run ends as its last attempt did (that attempt's line is already written), and its job's
    state, notices and heartbeat follow as for any finished run. None when the run started
    again or finished meanwhile.
    """
    now = time.time()

    def started(row: dict[str, Any]) -> bool:
        return reserved_run_started(ctx, row)

    if run["attempt"] == 0:
        if not ctx.store.end_if_pending(run["run_id"], "canceled", reason, now, started):
            return None
        record_canceled(ctx, run, reason)
        return "canceled"
    status = run.get("attempt_status") or "error"
    if not ctx.store.end_if_pending(run["run_id"], status, None, now, started):
        return None
    state = None
    if run["kind"] == "job":
        state = update_job_state(
            ctx, run["job_name"], status, run["started_at"] or now, run.get("error")
        )
    outcome = AttemptOutcome(
        status=status,
        exit_code=run.get("exit_code"),
        error=run.get("error"),
        output=run.get("output_tail") or "",
        output_truncated=bool(run.get("output_truncated")),
        started_at=run["started_at"] or now,
        ended_at=run.get("ended_at") or now,
        pid=run.get("pgid"),
    )
    notices.run_finished(ctx, {**run, "status": status}, outcome, state)
    log.info("%s (run %s) will not be retried: %s", run["job_name"], run["run_id"], reason)
    return status


def record_canceled(ctx: RunnerContext, run: dict[str, Any], reason: str) -> None:
    """A run removed before it (or its next attempt) started still leaves a line behind."""
    now = time.time()
    append_or_keep(
        ctx,
        record_fields(
            ctx,
            job_name=run["job_name"],
            end_time=iso(now),
            status="canceled",
            error=reason,
            run_id=run["run_id"],
            attempt=run["attempt"],
            max_attempts=run["max_attempts"],
            duration_seconds=0.0,
            trigger=run["trigger"],
            scheduled_for=run["scheduled_for"],
            log_file=run.get("log_file"),
        ),
        now,
    )
