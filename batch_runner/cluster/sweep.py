"""Runs whose worker died: found by their heartbeat, ended ``interrupted`` and retried per
``max_attempts``, by whichever process of the cluster looks first (every scheduler and worker
does, every few seconds; no leader).

A run of this host whose worker process is gone has its process group killed first (the job
could still be running in its own session). A run of another host is taken only when no
process of that host has said it was alive for ``STALE_SECONDS``: a host that lives ends its own
runs. Each run is swept in a transaction of its own, the row locked with SKIP LOCKED, so two
sweepers never both end it and one failure never stops the sweep of the others.
"""

from __future__ import annotations

import os
import time

from batch_runner.errors import StorageError
from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.finish import finish_attempt, result_record
from batch_runner.runs.recovery import outcome_of
from batch_runner.state.postgres.cluster import STALE_SECONDS
from batch_runner.state.results import append_result
from batch_runner.state.resultsearch import find_result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger("batch_runner")


def sweep(ctx: RunnerContext, running_here: set[str]) -> int:
    """End the stale runs this process may end; how many it ended."""
    store: Any = ctx.store
    for run_id in store.requeue_stuck_reserved():
        log.warning("run %s was handed to a worker that never started it: queued again", run_id)
    store.fail_orphan_pq_jobs()
    stale = store.stale_runs()
    if not stale:
        return 0
    live = [p for p in store.processes() if p["age"] < STALE_SECONDS]
    live_hosts = {p["host"] for p in live}
    live_processes = {(p["host"], p["pid"]) for p in live}
    ended = 0
    for run in stale:
        if run["run_id"] in running_here:
            continue  # ours and alive: its beat was late (a database that was away)
        if run["host"] == ctx.host:
            owner = run.get("owner_pid")
            if owner != os.getpid() and (ctx.host, owner) in live_processes and _alive(owner):
                continue  # another process of this host runs it and will beat again
        elif run["host"] in live_hosts:
            continue  # its host lives: it ends its own runs
        try:
            ended += _sweep_one(ctx, run["run_id"])
        except StorageError as exc:
            log.warning("could not settle run %s of a dead worker: %s", run["run_id"], exc)
    return ended


def _sweep_one(ctx: RunnerContext, run_id: str) -> int:
    store: Any = ctx.store
    record: dict[str, Any] | None = None
    with store.transaction():
        run = store.lock_stale(run_id)
        if run is None:
            return 0  # ended meanwhile, or another sweeper has it
        run.setdefault("log_file", None)
        line = None
        if run["host"] == ctx.host:
            if run.get("pgid"):
                _kill_group(run["pgid"])
            # Its end may be written here already (the database was away as it ended, then
            # its worker died): it goes on record as it ended, never as interrupted.
            line = find_result(
                ctx.layout, store, run_id, run["attempt"], run.get("started_at") or 0.0
            )
        if line is not None:
            run["log_file"] = run["log_file"] or line.get("log_file")
            finish_attempt(ctx, run, outcome_of(line), journaled=True)
            store.keep_result(line)
            verdict = f"ended {line['status']} before its worker died: recorded from its line"
        else:
            host_ctx = _as_host(ctx, run["host"])
            outcome = _interrupted(run)
            record = result_record(run, outcome, host_ctx)
            finish_attempt(host_ctx, run, outcome, journaled=True, retry_interrupted=True)
            store.keep_result(record)
            verdict = "ended interrupted"
        store.fail_pq_job(run.get("pq_job_id"))
    if record is not None:
        # After the commit: a sweep whose transaction failed leaves no line to write twice.
        try:
            append_result(ctx.layout, record, _record_start(run))
        except StorageError as exc:
            log.warning("run %s: its interrupted line is in the database only: %s", run_id, exc)
    log.warning(
        "run %s of %s: its worker on %s stopped answering; %s",
        run_id,
        run["job_name"],
        run["host"],
        verdict,
    )
    return 1


def _interrupted(run: dict[str, Any]) -> AttemptOutcome:
    now = time.time()
    return AttemptOutcome(
        status="interrupted",
        started_at=run.get("started_at") or now,
        ended_at=now,
        exit_code=None,
        output="",
        output_truncated=False,
        error=f"interrupted: its worker on {run['host']} stopped answering",
        pid=run.get("pgid"),
    )


def _record_start(run: dict[str, Any]) -> float:
    return float(run.get("started_at") or time.time())


def _as_host(ctx: RunnerContext, host: str) -> RunnerContext:
    """``ctx`` writing the record of an attempt of ``host`` (its line says where it ran)."""
    if host == ctx.host:
        return ctx
    other = RunnerContext.__new__(RunnerContext)
    other.__dict__.update(ctx.__dict__)
    other.host = host
    return other


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
