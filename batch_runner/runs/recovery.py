"""Start-up reaping: runs left ``running`` by a runner that died (SIGKILL, power loss, OOM)."""

from __future__ import annotations

import os
import time

from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.execution.procs import first_group_of_run, terminate_run
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext, run_day
from batch_runner.runs.finish import finish_attempt, write_waiting_results
from batch_runner.state.locks import FileLock

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger("batch_runner")


def reap_orphans(
    ctx: RunnerContext, kill_grace: float, orphans: list[dict[str, Any]] | None = None
) -> int:
    """Mark every ``running`` run ``interrupted`` and kill what is left of its processes.

    Only called while holding the executor lock: the runner of a live run holds that lock for
    the whole attempt, so any run still ``running`` now has lost its runner. ``orphans``:
    those runs, when the caller has just read them.
    """
    if orphans is None:
        orphans = ctx.store.runs_with_status("running")
    for run in orphans:
        if run["pgid"] is None and run["started_at"]:
            # Its runner died before it reported the run (see executor.STARTED_REPORT_DELAY).
            run["pgid"] = first_group_of_run(run["run_id"])
        terminate_run(run["pgid"], run["run_id"], kill_grace)
        if run["log_file"] is None and run["started_at"]:
            day = run_day(run["run_id"], run["started_at"])
            path = ctx.layout.run_log(day, run["run_id"], run["attempt"])
            run["log_file"] = path if os.path.exists(path) else None
        now = time.time()
        who = f"pid {run['owner_pid']}" if run["owner_pid"] else "unknown"
        outcome = AttemptOutcome(
            status="interrupted",
            exit_code=None,
            error=f"interrupted: the runner ({who}) stopped mid-run",
            output="",
            output_truncated=False,
            started_at=run["started_at"] or now,
            ended_at=now,
            pid=run["pgid"],
        )
        finish_attempt(ctx, run, outcome)  # its status is interrupted: never retried
        log.warning(
            "run %s of %s was left running by a dead runner: marked interrupted",
            run["run_id"],
            run["job_name"],
        )
    return len(orphans)


def reap_if_free(ctx: RunnerContext, lock: FileLock | None = None) -> int:
    """Reap now if runs are ``running`` while nobody holds the executor: they are orphans.

    For the places that do not drain at once (a worker with nothing due, ``stop``, the
    scheduler between wake-ups); ``drain_due`` reaps under the lock before every batch anyway.
    ``lock``: the caller's executor lock, if it has one. Result lines a full disk kept back are
    appended here too, so they need not wait for the next run.
    """
    write_waiting_results(ctx)
    if not ctx.store.runs_with_status("running"):
        return 0
    lock = lock or FileLock(ctx.layout.executor_lock)
    if lock.held:
        return reap_orphans(ctx, ctx.config.settings.kill_grace)  # and the caller keeps it
    if not lock.acquire(wait=False):
        return 0  # a live runner holds it: its run is not an orphan
    try:
        return reap_orphans(ctx, ctx.config.settings.kill_grace)
    finally:
        lock.release()
