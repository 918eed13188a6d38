"""Start-up reaping: runs left ``running`` by a runner that died (SIGKILL, power loss, OOM)."""

from __future__ import annotations

import os
import time

from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.execution.procs import first_group_of_run, terminate_run
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext, run_day
from batch_runner.runs.finish import finish_attempt, write_waiting_results
from batch_runner.state.slots import Slot

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

log = get_logger("batch_runner")


def reap_orphans(ctx: RunnerContext, kill_grace: float, orphans: list[dict[str, Any]]) -> int:
    """Mark each of ``orphans`` ``interrupted`` and kill what is left of its processes.

    Only for runs ``running`` in a slot the caller holds (or has just taken): the runner of a
    live run holds its slot for the whole attempt, so such a run has lost its runner.
    """
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


def reap_if_free(
    ctx: RunnerContext,
    held: Iterable[Slot] = (),
    running: list[dict[str, Any]] | None = None,
) -> int:
    """Reap the runs ``running`` in a slot nobody holds: they are orphans.

    ``held``: the slots the caller holds (runs in them are orphans for certain); any other
    slot with a run is tried without waiting: held by another runner, its run lives on; taken,
    its run is reaped and the slot let go. ``running``: the running runs, when the caller has
    just read them. Result lines a full disk kept back are appended here too, so they need not
    wait for the next run.
    """
    write_waiting_results(ctx)
    if running is None:
        running = ctx.store.runs_with_status("running")
    by_slot: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in running:
        # A row of schema 3 or before has no slot: it ran under the one executor lock.
        by_slot.setdefault((run.get("lane") or "default", run.get("slot") or 0), []).append(run)
    if not by_slot:
        return 0
    ours = {(slot.lane, slot.index): slot for slot in held}
    reaped = 0
    for (lane, index), runs in by_slot.items():
        lock = ours.get((lane, index))
        if lock is not None and lock.held:
            reaped += reap_orphans(ctx, ctx.config.settings.kill_grace, runs)
            continue
        slot = Slot(ctx.layout, lane, index)
        if not slot.acquire(wait=False):
            continue  # a live runner holds it: its run is not an orphan
        try:
            # Read again under the slot: the run may have ended since, and its slot reused.
            still = [r for r in ctx.store.runs_with_status("running") if _in(r, lane, index)]
            reaped += reap_orphans(ctx, ctx.config.settings.kill_grace, still)
        finally:
            slot.release()
    return reaped


def _in(run: dict[str, Any], lane: str, index: int) -> bool:
    return (run.get("lane") or "default", run.get("slot") or 0) == (lane, index)
