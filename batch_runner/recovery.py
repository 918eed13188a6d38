"""Start-up reaping: runs left ``running`` by a runner that died (SIGKILL, power loss, OOM)."""

from __future__ import annotations

import time

from batch_runner.bookkeeping import finish_attempt
from batch_runner.context import RunnerContext
from batch_runner.logs import get_logger
from batch_runner.outcome import AttemptOutcome
from batch_runner.procs import terminate_run

log = get_logger("batch_runner")


def reap_orphans(ctx: RunnerContext, kill_grace: float) -> int:
    """Mark every ``running`` run ``interrupted`` and kill what is left of its processes.

    Only called while holding the executor lock: the runner of a live run holds that lock for
    the whole attempt, so any run still ``running`` now has lost its runner.
    """
    orphans = ctx.store.runs_with_status("running")
    for run in orphans:
        terminate_run(run["pgid"], run["run_id"], kill_grace)
        now = time.time()
        who = f"pid {run['owner_pid']}" if run["owner_pid"] else "unknown"
        outcome = AttemptOutcome(
            status="interrupted", exit_code=None,
            error=f"interrupted: the runner ({who}) stopped mid-run",
            output="", output_truncated=False,
            started_at=run["started_at"] or now, ended_at=now, pid=run["pgid"],
        )
        finish_attempt(ctx, run, outcome)
        log.warning("run %s of %s was left running by a dead runner: marked interrupted",
                    run["run_id"], run["job_name"])
    return len(orphans)
