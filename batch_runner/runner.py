"""The one path every run takes: enqueue, wait for the executor, claim, execute, record.

Runs live in the state database as a queue. Whoever holds the executor lock (the scheduler, a
``run-job`` from cron, a queue worker) claims the next due run in order of priority, due time and
arrival, and executes it; so one run at a time across every process on a log dir, in order.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

from batch_runner import events
from batch_runner.bookkeeping import finish_attempt, new_run_id, record_skip
from batch_runner.command import build_argv, build_child_env
from batch_runner.context import RunnerContext
from batch_runner.errors import StorageError
from batch_runner.executor import AttemptRequest, execute
from batch_runner.http_attempt import run_http_attempt
from batch_runner.locks import FileLock
from batch_runner.logs import get_logger
from batch_runner.paths import resolve_under_root
from batch_runner.recovery import reap_orphans
from batch_runner.spec import JobSpec
from batch_runner.store import FINISHED_STATUSES
from batch_runner.timefmt import day_stamp

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger("batch_runner")

STOP_CHECK_INTERVAL = 1.0


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
        "notify_after": job.notify_after,
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
) -> str | None:
    """Accept a run of ``job``; None (and a ``skipped`` record) if one already waits or runs.

    ``next_run``, the scheduler's following occurrence, is remembered in the same write.
    """
    now = time.time()
    with ctx.store.transaction() as db:
        if next_run is not None:
            ctx.store.set_next_run(job.name, next_run, db)
        active = ctx.store.active_run_of_job(job.name, db)
        if active is None or _runner_is_gone(ctx, active):
            run_id = new_run_id(now)
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
                },
                db,
            )
            return run_id
    reason = f"job {job.name!r} is already {active['status']} (run {active['run_id']})"
    record_skip(
        ctx, job.name, trigger, reason, max_attempts=job.max_attempts, scheduled_for=scheduled_for
    )
    return None


def _runner_is_gone(ctx: RunnerContext, run: dict[str, Any]) -> bool:
    """Whether ``run`` only looks active: its runner died; it is reaped before the next claim."""
    if run["status"] != "running" or run["host"] != ctx.host or not run["owner_pid"]:
        return False
    try:
        os.kill(run["owner_pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class WaitInterrupted(Exception):
    """A signal arrived while waiting for the executor lock."""


class Interrupter:
    """Turns signals, shutdown and stop requests into the executor's ``cancel`` answer.

    ``stop_new`` means start nothing new; ``interrupt_now`` means end the running attempt as
    ``interrupted``. A signal handler only sets flags and writes a byte to a pipe; the executor
    wakes on the pipe, asks ``cancel()``, and stops the attempt itself.
    """

    def __init__(self, ctx: RunnerContext) -> None:
        self.ctx = ctx
        self.stop_new = False
        self.interrupt_now = False
        self.in_blocking_wait = False
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.run_id: str | None = None

    def install(self) -> None:
        """For a foreground ``run-job``: any of these signals ends the run at once."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.interrupt()
        if self.in_blocking_wait:
            # Python retries an interrupted flock() unless the handler raises; only a wait for
            # the lock is interrupted this way, never a database write.
            raise WaitInterrupted(f"interrupted by signal {signum} while waiting")

    def interrupt(self) -> None:
        self.stop_new = self.interrupt_now = True
        self.poke()

    def poke(self) -> None:
        """Wake the executor so it asks ``cancel()`` now (safe from a signal handler)."""
        try:
            os.write(self.write_fd, b"x")
        except OSError:
            pass  # the pipe is full: the executor has wake-ups pending already

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when a signal arrives (the handler writes to the pipe)."""
        import select

        select.select([self.read_fd], [], [], seconds)

    def cancel(self) -> str | None:
        if self.interrupt_now:
            return "interrupted"
        if self.run_id is not None:
            run = self.ctx.store.get_run(self.run_id)
            if run is not None and run["stop_requested"]:
                return "stopped"
        return None


Observer = Callable[..., None]  # observer("start", run) and observer("end", run, status)


def execute_run(
    ctx: RunnerContext,
    run: dict[str, Any],
    interrupter: Interrupter | None,
    observer: Observer | None = None,
    claim_next: Callable[[], dict[str, Any] | None] | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Execute one claimed attempt and record it; returns the run's new status, and the next
    run when ``claim_next`` is given (see ``bookkeeping.finish_attempt``)."""
    log_path = ctx.layout.run_log(day_stamp(run["started_at"]), run["run_id"], run["attempt"])
    run["log_file"] = log_path
    request = attempt_request(ctx, run)
    announced: list[bool] = []
    announce_errors: list[Exception] = []

    def announce(pid: int | None) -> None:
        announced.append(True)
        try:
            if observer is not None:
                observer("start", run)
            log.info(
                "start %s (run %s, attempt %d/%d%s)",
                run["job_name"],
                run["run_id"],
                run["attempt"],
                run["max_attempts"],
                f", pid {pid}" if pid else "",
            )
        except Exception as exc:  # the job has started: it runs and is recorded first
            announce_errors.append(exc)

    events.attempt_starting(ctx, run)
    if interrupter is not None:
        interrupter.run_id = run["run_id"]
    cancel = interrupter.cancel if interrupter else None
    if run["spec"].get("type") == "http":
        announce(None)
        ctx.store.update_run(run["run_id"], log_file=run["log_file"])
        outcome = run_http_attempt(ctx, run, request, cancel=cancel)
    else:
        outcome = execute(
            request,
            # Said once the child runs: under journald the line wakes the journal, which would
            # otherwise compete with the child's start for the CPU (about a millisecond here).
            on_spawned=announce,
            on_started=lambda pid: _record_started(ctx, run, pid),
            cancel=cancel,
            wake_fd=interrupter.read_fd if interrupter else None,
            cancel_poll_interval=STOP_CHECK_INTERVAL,
        )
    if not announced:
        announce(None)  # it could not start: its start line still comes before its end
    status, claimed = finish_attempt(ctx, run, outcome, claim_next)
    try:
        if announce_errors:
            raise announce_errors[0]
        if observer is not None:
            observer("end", run, outcome.status if status != "pending" else "retry pending")
        log.info(
            "end %s (run %s): %s%s",
            run["job_name"],
            run["run_id"],
            outcome.status,
            f" — {outcome.error.splitlines()[0]}" if outcome.error else "",
        )
    except BaseException:  # a worker's stdout gone (BrokenPipeError), say
        if claimed is not None:
            ctx.store.unclaim(claimed["run_id"], ctx.pid)  # never started: it waits again
        raise
    return status, claimed


def _record_started(ctx: RunnerContext, run: dict[str, Any], pid: int) -> None:
    """One write records both the run's process group and where its output goes. A run done
    before the executor reports it gets both written when it ends, as does this one if the
    write fails now (a full disk): the job goes on either way."""
    try:
        ctx.store.update_run(run["run_id"], pgid=pid, log_file=run["log_file"])
    except StorageError as exc:
        log.warning("run %s: %s", run["run_id"], exc)


def attempt_request(ctx: RunnerContext, run: dict[str, Any]) -> AttemptRequest:
    spec, settings = run["spec"], ctx.config.settings
    cwd = resolve_under_root(ctx.root, spec["cwd"]) if spec.get("cwd") else ctx.root
    return AttemptRequest(
        run_id=run["run_id"],
        job_name=run["job_name"],
        attempt=run["attempt"],
        argv=build_argv(spec["command"], spec.get("shell", "auto")) if spec.get("command") else [],
        cwd=cwd,
        env=build_child_env(
            _runner_environ(ctx),
            spec.get("env") or {},
            run_id=run["run_id"],
            job_name=run["job_name"],
            attempt=run["attempt"],
            config_path=ctx.config.path,
        ),
        timeout=float(spec.get("timeout") or settings.default_timeout),
        kill_grace=settings.kill_grace,
        log_path=run["log_file"],
        run_log_max_bytes=settings.run_log_max_bytes,
        output_max_bytes=settings.output_max_bytes,
    )


def _runner_environ(ctx: RunnerContext) -> dict[str, str]:
    if ctx.child_environ is None:
        ctx.child_environ = _child_environ(ctx)
    return ctx.child_environ


def _child_environ(ctx: RunnerContext) -> dict[str, str]:
    """The runner's environment as a job sees it.

    The runner's own bin directory goes *last* on PATH, so ``batch_runner clean`` works from a
    job even under cron's bare PATH while every program the job finds already (``python``
    above all) stays the one it was. ``BATCH_RUNNER_LOG_DIR`` lets ``batch_runner progress``
    find the state database from inside the run.
    """
    env = dict(os.environ)
    env["BATCH_RUNNER_LOG_DIR"] = ctx.layout.log_dir
    own_bin = os.path.dirname(sys.executable)
    parts = env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    if own_bin and own_bin not in parts:
        env["PATH"] = os.pathsep.join([*parts, own_bin])
    return env


def drain_due(
    ctx: RunnerContext,
    interrupter: Interrupter | None,
    until_run: str | None = None,
    observer: Observer | None = None,
) -> None:
    """Run due runs one by one while holding the executor lock; stop after ``until_run`` ends.

    While the queue is paused only ``until_run`` (a foreground ``run-job``) may start.
    """
    reap_orphans(ctx, ctx.config.settings.kill_grace)

    def claim(first_attempt_only: bool = False) -> dict[str, Any] | None:
        if interrupter and interrupter.stop_new:
            return None
        return ctx.store.claim_next(
            time.time(),
            ctx.pid,
            ctx.host,
            foreground_run_id=until_run,
            first_attempt_only=first_attempt_only,
        )

    def claim_first_attempt() -> dict[str, Any] | None:
        return claim(first_attempt_only=True)

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
            ctx, run, interrupter, observer, claim_first_attempt if quiet_end else None
        )
        if run is None:
            run = claim()  # the queue's end, a retry next, or an end that was not quiet
        elif interrupter and interrupter.stop_new:
            ctx.store.unclaim(run["run_id"], ctx.pid)  # a signal came after the claim
            return


def drain_one(ctx: RunnerContext, interrupter: Interrupter | None) -> str | None:
    """One attempt of the next due run (``queue run``); None when nothing is due or paused.

    The caller holds the executor lock.
    """
    reap_orphans(ctx, ctx.config.settings.kill_grace)
    run = ctx.store.claim_next(time.time(), ctx.pid, ctx.host)
    return None if run is None else execute_run(ctx, run, interrupter)[0]


def run_to_completion(
    ctx: RunnerContext, run_id: str, *, lock: FileLock, interrupter: Interrupter | None = None
) -> dict[str, Any]:
    """Wait for the executor, run what is due ahead of ``run_id``, then ``run_id`` and its retries.

    Returns the run as it ended (still ``pending`` only if a signal cut the wait short).
    """
    while True:
        run = ctx.store.get_run(run_id)
        if run is None or run["status"] in FINISHED_STATUSES:
            return run or {}
        if interrupter and interrupter.stop_new:
            return run
        acquire_interruptibly(lock, interrupter)
        try:
            drain_due(ctx, interrupter, until_run=run_id)
        finally:
            lock.release()
        _sleep_until_due(ctx, run_id, interrupter)


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


def _sleep_until_due(ctx: RunnerContext, run_id: str, interrupter: Interrupter | None) -> None:
    """A retry waiting out its backoff does not hold the executor: sleep with the lock released."""
    run = ctx.store.get_run(run_id)
    if run is None or run["status"] != "pending":
        return
    delay = min(max(run["due_at"] - time.time(), 0.0), 1.0)
    if delay <= 0:
        return
    if interrupter is None:
        time.sleep(delay)
    else:
        interrupter.sleep(delay)
