"""Executing one claimed attempt, of a command or an HTTP call, and recording how it ended."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from batch_runner.errors import StorageError
from batch_runner.execution.command import build_argv, build_child_env
from batch_runner.execution.executor import execute
from batch_runner.execution.outcome import AttemptOutcome, AttemptRequest
from batch_runner.logs import get_logger
from batch_runner.paths import resolve_root, resolve_under_root
from batch_runner.runs import notices
from batch_runner.runs.context import RunnerContext, run_day
from batch_runner.runs.finish import finish_attempt
from batch_runner.runs.interrupt import Interrupter

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.runs.handoff import Handoff

# The attempt ends that mean something went wrong (not a stop a user asked for).
FAILED_STATUSES = frozenset({"error", "timeout", "interrupted"})

log = get_logger("batch_runner")
# Each attempt's start and end: cli.main quiets it for commands that print the outcome.
attempt_log = get_logger("batch_runner.attempts")

STOP_CHECK_INTERVAL = 1.0

# observer("start", run) and observer("end", run, "error — exit code 3", final): final is
# False when the run will be retried.
Observer = Callable[..., None]


def execute_run(
    ctx: RunnerContext,
    run: dict[str, Any],
    interrupter: Interrupter | None,
    observer: Observer | None = None,
    claim_next: Callable[[], dict[str, Any] | None] | None = None,
    handoff: Handoff | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Execute one claimed (or, with ``handoff``, reserved) attempt and record it; returns the
    run's new status, and the next run when ``claim_next`` is given (see
    ``finish.finish_attempt``). With ``handoff`` a reserved run may not start after all
    (``handoff.NotStarted``), and the bookkeeping waits for the next run's start."""
    run["log_file"] = ctx.layout.run_log(
        run_day(run["run_id"], run["started_at"]), run["run_id"], run["attempt"]
    )
    announcer = _Announcer(run, observer)
    request = attempt_request(ctx, run)
    notices.attempt_starting(ctx, run)
    outcome = _attempt(ctx, run, request, interrupter, announcer, handoff)
    if handoff is not None:
        handoff.settle(run)
    if not announcer.done:
        announcer.start(None)  # it could not start: its start line still comes before its end
    status, claimed = finish_attempt(
        ctx, run, outcome, claim_next, defer=handoff.defer if handoff else None
    )
    if handoff is not None and announcer.error is None:
        # Said once the next run is spawned: its start line still comes after this end.
        handoff.say_later(lambda: announcer.end(outcome, status))
        return status, claimed
    try:
        announcer.end(outcome, status)
    except BaseException:  # a worker's stdout gone (BrokenPipeError), say
        if claimed is not None:
            ctx.store.unclaim(claimed["run_id"], ctx.pid)  # never started: it waits again
        raise
    return status, claimed


def _attempt(
    ctx: RunnerContext,
    run: dict[str, Any],
    request: AttemptRequest,
    interrupter: Interrupter | None,
    announcer: _Announcer,
    handoff: Handoff | None,
) -> AttemptOutcome:
    if interrupter is not None:
        interrupter.run_id = run["run_id"]
    cancel = interrupter.cancel if interrupter else None
    if run["spec"].get("type") == "http":
        announcer.start(None)
        ctx.store.update_run(run["run_id"], log_file=run["log_file"])
        return _http_attempt(ctx, run, request, cancel)
    on_spawned: Callable[[int], None] = announcer.start
    if handoff is not None:

        def spawned(pid: int) -> None:
            handoff.after_spawn(run)  # the bookkeeping, while the child starts
            announcer.start(pid)

        on_spawned = spawned

    return execute(
        request,
        before_spawn=handoff.before_spawn(run) if handoff and run.get("reserved") else None,
        # Said once the child runs: under journald the line wakes the journal, which would
        # otherwise compete with the child's start for the CPU (about a millisecond here).
        on_spawned=on_spawned,
        on_started=lambda pid: _record_started(ctx, run, pid, handoff),
        cancel=cancel,
        wake_fd=interrupter.read_fd if interrupter else None,
        cancel_poll_interval=STOP_CHECK_INTERVAL,
        is_known_run=lambda run_id: _is_known_run(ctx, run_id),
    )


class _Announcer:
    """Tells the observer and the log that an attempt started, then how it ended.

    An error of the observer at the start (a worker's stdout gone) is kept for the end: once
    the job has started, it runs and is recorded first.
    """

    def __init__(self, run: dict[str, Any], observer: Observer | None) -> None:
        self.run, self.observer = run, observer
        self.done = False
        self.error: Exception | None = None

    def start(self, pid: int | None) -> None:
        run, self.done = self.run, True
        try:
            if self.observer is not None:
                self.observer("start", run)
            attempt_log.info(
                "start %s (run %s, attempt %d/%d%s)",
                run["job_name"],
                run["run_id"],
                run["attempt"],
                run["max_attempts"],
                f", pid {pid}" if pid else "",
            )
        except Exception as exc:
            self.error = exc

    def end(self, outcome: AttemptOutcome, status: str) -> None:
        if self.error is not None:
            raise self.error
        run = self.run
        reason = f" — {reason_after(outcome.status, outcome.error)}" if outcome.error else ""
        if self.observer is not None:
            shown = outcome.status if status != "pending" else f"{outcome.status}, retry pending"
            self.observer("end", run, shown + reason, status != "pending")
        # A failed attempt is a warning, so `journalctl -p warning` shows a job that keeps
        # failing; a stop asked for by a user is not.
        emit = attempt_log.warning if outcome.status in FAILED_STATUSES else attempt_log.info
        emit("end %s (run %s): %s%s", run["job_name"], run["run_id"], outcome.status, reason)


def reason_after(status: str, error: str) -> str:
    """The first line of ``error`` as it reads after its status: "interrupted — runner shutting
    down", not "interrupted — interrupted: runner shutting down"."""
    first = error.splitlines()[0] if error else ""
    return first.removeprefix(f"{status}: ")


def _is_known_run(ctx: RunnerContext, run_id: str) -> bool:
    """Whether ``run_id`` names a run that may have a daemon: an orphan carrying it is spared.

    Only a run still going or one that ended ``success`` (which may leave a daemon on purpose)
    vouches for it: a run that failed, timed out or was stopped had its own orphans ended, so
    its id in an environment is no alibi. Asked only when a run is ended and an orphan carries
    another id. Unanswerable, the orphan is spared, as a daemon started on purpose must never
    be killed for a failed read.
    """
    try:
        run = ctx.store.get_run(run_id)
        return run is not None and run.get("status") in ("running", "success")
    except StorageError as exc:
        log.warning("cannot tell whether run %r exists (%s): its orphans are spared", run_id, exc)
        return True


def _record_started(
    ctx: RunnerContext, run: dict[str, Any], pid: int, handoff: Handoff | None
) -> None:
    """One write records both the run's process group and where its output goes. A run done
    before the executor reports it gets both written when it ends, as does this one if the
    write fails now (a full disk): the job goes on either way."""
    try:
        if handoff is not None:
            handoff.started(run, pid)
        else:
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
    if ctx.root != resolve_root(None, {"BATCH_RUNNER_CONFIG": ctx.config.path}):
        # `--root R -c OTHER/x.json`: the job's `batch_runner clean` (BATCH_RUNNER_CONFIG is
        # set) would otherwise take the config's own folder for the root.
        env.setdefault("BATCH_RUNNER_ROOT", ctx.root)
    own_bin = os.path.dirname(sys.executable)
    parts = env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    if own_bin and own_bin not in parts:
        env["PATH"] = os.pathsep.join([*parts, own_bin])
    return env


def _http_attempt(
    ctx: RunnerContext,
    run: dict[str, Any],
    request: AttemptRequest,
    cancel: Callable[[], str | None] | None,
) -> AttemptOutcome:
    # Imported only now: urllib, ssl and http.client stay off the path of command jobs.
    from batch_runner.httpjob.attempt import run_attempt

    def stop_requested() -> bool:
        """Whether ``stop RUN_ID`` asked for this run: it is written to the store."""
        current = ctx.store.get_run(run["run_id"])
        return bool(current and current.get("stop_requested"))

    return run_attempt(
        run,
        request,
        settings=ctx.config.settings.http,
        stop_requested=stop_requested,
        cancel=cancel,
    )
