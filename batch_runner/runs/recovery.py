"""Start-up reaping: runs a runner that died (SIGKILL, power loss, OOM) left in play.

A slot's runner writes an attempt's JSONL line as soon as it ends and its row later, in the
commit that starts the next run (``runs.handoff``); and it takes its next run, ``reserved``,
while the current one runs. So what a dead runner leaves is judged from what it wrote:

- ``running``, with the attempt's line written: the attempt ended; it is recorded from its
  line (no second line, nothing killed). Without one: it is ``interrupted`` and what is left of
  its processes is killed.
- ``reserved``, with a line of the next attempt: it started and ended; recorded from its line.
  Started without one (its slot's note names it, ``Slot.note_start``, written before the
  spawn; or that attempt's run log exists, created just after it): it may have run, and ends
  ``interrupted`` like a running run. Neither: it never started, and goes back to the queue
  as it was.
"""

from __future__ import annotations

import os
import time

from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.execution.procs import first_group_of_run, terminate_run
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext, run_day
from batch_runner.runs.finish import finish_attempt, write_waiting_results
from batch_runner.state.results import RECORD_FIELDS
from batch_runner.state.resultsearch import find_result
from batch_runner.state.slots import Slot, noted_start
from batch_runner.timefmt import parse_iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

log = get_logger("batch_runner")

# The statuses of a run that a slot's runner holds: in a slot nobody holds, it is an orphan.
HELD_STATUSES = ("running", "reserved")


def reap_orphans(ctx: RunnerContext, kill_grace: float, orphans: list[dict[str, Any]]) -> int:
    """End each of ``orphans`` (``running`` or ``reserved``) as what its runner wrote says.

    Only for runs in a slot the caller holds (or has just taken): the runner of a live run
    holds its slot from the run's reservation to the end of its attempt, so such a run has
    lost its runner.
    """
    for run in orphans:
        if run["status"] == "reserved":
            _reap_reserved(ctx, kill_grace, run)
        else:
            _reap_running(ctx, kill_grace, run)
    return len(orphans)


def _reap_running(ctx: RunnerContext, kill_grace: float, run: dict[str, Any]) -> None:
    log_path = run["log_file"] or _run_log(ctx, run, run["attempt"], run["started_at"])
    if run["started_at"]:
        line = find_result(
            ctx.layout,
            ctx.store,
            run["run_id"],
            run["attempt"],
            run["started_at"],
            _written_at(log_path),
        )
        if line is not None:
            _record_from_line(ctx, run, line)
            return
    _interrupt(ctx, kill_grace, run, log_path, "stopped mid-run")


def _reap_reserved(ctx: RunnerContext, kill_grace: float, run: dict[str, Any]) -> None:
    """A reserved run's owner notes its start in the slot's lock file before the spawn (the
    last ``slots.NOTES`` starts are kept there) and creates its run log right after: with
    neither, and no line of that attempt, nothing was started."""
    attempt, reserved_at = run["attempt"] + 1, run["reserved_at"] or time.time()
    log_path = _run_log(ctx, run, attempt, reserved_at)
    written = _written_at(log_path)
    lane, index = run.get("lane") or "default", run.get("slot") or 0
    noted = noted_start(ctx.layout, lane, index, run["run_id"], attempt)
    line = find_result(ctx.layout, ctx.store, run["run_id"], attempt, reserved_at, written)
    if written is None and not noted and line is None:
        if ctx.store.release_reserved(run["run_id"]):
            log.warning(
                "run %s of %s was reserved by a dead runner (%s) and never started: "
                "put back in the queue",
                run["run_id"],
                run["job_name"],
                _who(run),
            )
        return
    started_at = _time(line["start_time"]) if line is not None else reserved_at
    if not _started(ctx, run, attempt, started_at, log_path):
        return  # no longer reserved: ended meanwhile (``queue remove``)
    if line is not None:
        _record_from_line(ctx, run, line)
    else:
        _interrupt(ctx, kill_grace, run, log_path, "stopped as it started it")


def _started(
    ctx: RunnerContext, run: dict[str, Any], attempt: int, started_at: float, log_path: str
) -> bool:
    """Mark a reserved run running as its owner would have: its next attempt, started at
    ``started_at``. Once committed, a death here leaves a running run, recovered as such."""
    started = {**run, "attempt": attempt, "started_at": started_at, "log_file": log_path}
    if not ctx.store.start_reserved(started, run["owner_pid"]):
        return False  # no longer reserved by that runner
    run.update(started, status="running", reserved_at=None, ended_at=None, pgid=None)
    run.update(exit_code=None, error=None)
    return True


def _interrupt(
    ctx: RunnerContext, kill_grace: float, run: dict[str, Any], log_path: str, how: str
) -> None:
    """Mark ``run`` ``interrupted`` and kill what is left of its processes."""
    if run["pgid"] is None and run["started_at"]:
        # Its runner died before it reported the run (see executor.STARTED_REPORT_DELAY).
        run["pgid"] = first_group_of_run(run["run_id"])
    terminate_run(run["pgid"], run["run_id"], kill_grace)
    if run["log_file"] is None and run["started_at"]:
        run["log_file"] = log_path if os.path.exists(log_path) else None
    now = time.time()
    outcome = AttemptOutcome(
        status="interrupted",
        exit_code=None,
        error=f"interrupted: the runner ({_who(run)}) {how}",
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


def _record_from_line(ctx: RunnerContext, run: dict[str, Any], line: dict[str, Any]) -> None:
    """The attempt ended before its runner died: its end goes on record as its line says
    (a retry if it failed with attempts left, its job's state, its notices), with no line."""
    if run.get("log_file") is None:
        run["log_file"] = line.get("log_file")
    status, _ = finish_attempt(ctx, run, outcome_of(line), journaled=True)
    log.warning(
        "run %s of %s ended (%s) before its runner died: recorded from its result line%s",
        run["run_id"],
        run["job_name"],
        line["status"],
        ", retry pending" if status == "pending" else "",
    )


def outcome_of(line: dict[str, Any]) -> AttemptOutcome:
    """An attempt's outcome as its JSONL line tells it."""
    extra = {key: value for key, value in line.items() if key not in RECORD_FIELDS}
    return AttemptOutcome(
        status=str(line["status"]),
        exit_code=line.get("exit_code"),
        error=line.get("error"),
        output=line.get("output") or "",
        output_truncated=bool(line.get("output_truncated")),
        started_at=_time(line["start_time"]),
        ended_at=_time(line["end_time"]),
        pid=line.get("pid"),
        extra=extra or None,
    )


def _time(value: str) -> float:
    return parse_iso(value)  # find_result took only lines whose times parse


def _run_log(ctx: RunnerContext, run: dict[str, Any], attempt: int, at: float | None) -> str:
    day = run_day(run["run_id"], at or time.time())
    return ctx.layout.run_log(day, run["run_id"], attempt)


def _written_at(path: str) -> float | None:
    """When a run log was last written (its attempt had started by then); None if it has none."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _who(run: dict[str, Any]) -> str:
    return f"pid {run['owner_pid']}" if run["owner_pid"] else "unknown"


def reap_if_free(
    ctx: RunnerContext,
    held: Iterable[Slot] = (),
    running: list[dict[str, Any]] | None = None,
) -> int:
    """Reap the runs ``running`` or ``reserved`` in a slot nobody holds: they are orphans.

    ``held``: the slots the caller holds (runs in them are orphans for certain); any other
    slot with a run is tried without waiting: held by another runner, its run lives on; taken,
    its run is reaped and the slot let go. ``running``: the running and reserved runs, when
    the caller has just read them. Result lines a full disk kept back are appended here too,
    so they need not wait for the next run: after the search for orphans' lines, which they
    would otherwise precede in the file with their older times.
    """
    if ctx.clustered:
        # No slot file tells a cluster's runners apart: their heartbeats do (cluster.sweep).
        write_waiting_results(ctx)
        return 0
    if running is None:
        running = ctx.store.runs_with_status(*HELD_STATUSES)
    reaped = _reap_by_slot(ctx, held, running)
    write_waiting_results(ctx)
    return reaped


def _reap_by_slot(ctx: RunnerContext, held: Iterable[Slot], running: list[dict[str, Any]]) -> int:
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
            continue  # a live runner holds it: its runs are not orphans
        try:
            # Read again under the slot: the run may have ended since, and its slot reused.
            still = [r for r in ctx.store.runs_with_status(*HELD_STATUSES) if _in(r, lane, index)]
            reaped += reap_orphans(ctx, ctx.config.settings.kill_grace, still)
        finally:
            slot.release()
    return reaped


def _in(run: dict[str, Any], lane: str, index: int) -> bool:
    return (run.get("lane") or "default", run.get("slot") or 0) == (lane, index)
