"""What a finished attempt leaves behind: its JSONL line, its run row, its job's state.

Every way an attempt can end (it finished, its runner died) is written here, and the lines of
runs that end without one (``runs.endings``) are built by the same ``record_fields``, so every
record has the same shape. A line the JSONL cannot take (a full disk) is kept in the store with
the end of its run, and appended by the next runner that writes a line of its own
(``state.journal``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from batch_runner.errors import BackendUnavailable, StorageError
from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.logs import get_logger
from batch_runner.runs import notices
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.disabling import disable_reason
from batch_runner.state.results import RECORD_FIELDS, append_result
from batch_runner.timefmt import iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger("batch_runner")

FAILED_STATUSES = ("error", "timeout")
BACKOFF_CAP_SECONDS = 3600.0


def retry_delay(spec: dict[str, Any], attempt: int) -> float:
    """Seconds before the attempt after ``attempt`` (SPEC 8), capped at one hour."""
    base = float(spec.get("backoff_seconds", 30.0))
    if spec.get("backoff", "exponential") == "fixed":
        return min(base, BACKOFF_CAP_SECONDS)
    return min(base * 2.0 ** (attempt - 1), BACKOFF_CAP_SECONDS)


def record_fields(ctx: RunnerContext, **fields: Any) -> dict[str, Any]:
    """A JSONL record: every SPEC 7 field in order, unknown ones null, then ``fields``."""
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    record.update(output="", output_truncated=False, host=ctx.host)
    record.update(fields)
    return record


def result_record(
    run: dict[str, Any], outcome: AttemptOutcome, ctx: RunnerContext
) -> dict[str, Any]:
    return record_fields(
        ctx,
        job_name=run["job_name"],
        start_time=iso(outcome.started_at),
        end_time=iso(outcome.ended_at),
        status=outcome.status,
        output=outcome.output,
        error=outcome.error,
        run_id=run["run_id"],
        attempt=run["attempt"],
        max_attempts=run["max_attempts"],
        exit_code=outcome.exit_code,
        duration_seconds=round(max(outcome.ended_at - outcome.started_at, 0.0), 3),
        trigger="retry" if run["attempt"] > 1 else run["trigger"],
        scheduled_for=run["scheduled_for"],
        output_truncated=outcome.output_truncated,
        log_file=run["log_file"],
        pid=outcome.pid,
        **(outcome.extra or {}),
    )


def finish_attempt(
    ctx: RunnerContext,
    run: dict[str, Any],
    outcome: AttemptOutcome,
    claim_next: Callable[[], dict[str, Any] | None] | None = None,
    *,
    defer: Callable[[Ended], None] | None = None,
    journaled: bool = False,
    retry_interrupted: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """Record one finished attempt; returns the run's new status (``pending`` when retried)
    and what ``claim_next`` claimed.

    ``claim_next``, a queue's next claim, goes in the same transaction as the end of this run:
    one commit instead of two between runs. Should that commit fail, the end is written alone.
    When the JSONL line cannot be written (a full disk), the run's row is still brought up to
    date, so the run ends as it really did instead of being taken for the run of a dead runner
    later, and the line is kept with it, to be appended later. The error is raised once the
    run has ended; before a retry it is only logged, so whoever waits for the run (a
    ``run-job`` from cron) stays with it to the end instead of leaving a pending retry behind
    that would turn the job's next runs away.

    ``defer``: a slot draining runs back to back (``runs.handoff``) takes a quiet end (final,
    nothing to send) once its line is written, and writes it to the store with the start of
    the next run. ``journaled``: the line is in the JSONL already (recovery found it there).
    ``retry_interrupted``: an ``interrupted`` attempt is retried as a failed one is (a
    cluster's run whose host died: another host takes it over).
    """
    fields, retry = _ended_fields(run, outcome, retry_interrupted)
    unjournaled, unwritten, record = None, None, None
    if not journaled:
        record = result_record(run, outcome, ctx)
        unjournaled = _journal(ctx, record, outcome.started_at, waiting=defer is None)
        if unjournaled is not None:
            claim_next = None  # the error is raised below: a run claimed now would not start
            unwritten = record
        elif defer is not None and _quiet(ctx, run, outcome, retry):
            defer(Ended(run, fields, outcome))
            return fields["status"], None
    try:
        state, claimed = _record_end(
            ctx, run, fields, retry, outcome.started_at, claim_next, unwritten, record
        )
    except BackendUnavailable as exc:
        # Waited for only on its own: inside a caller's transaction (the sweep) the
        # connection is gone with the transaction, and the caller has more to do.
        if (
            not ctx.clustered
            or unjournaled is not None
            or getattr(ctx.store, "in_transaction", False)
        ):
            raise
        # The cluster's database is away (a restart): the end waits for it, its line written.
        state, claimed = _record_end_when_back(
            ctx,
            exc,
            lambda: _record_end(ctx, run, fields, retry, outcome.started_at, None, None, record),
        )
    except StorageError:
        if unjournaled is not None:
            raise unjournaled from None  # the first failure says what is wrong (the disk)
        raise
    if unjournaled is not None:
        unjournaled = kept_for_later(unjournaled)
    if not retry:
        notices.run_finished(ctx, {**run, **fields}, outcome, state)
    if unjournaled is not None:
        if not retry:
            raise unjournaled
        log.error(
            "%s (attempt %d of run %s; its retry goes ahead)",
            unjournaled,
            run["attempt"],
            run["run_id"],
        )
    return fields["status"], claimed


class Ended:
    """An attempt's end whose line is written and whose row waits for the next commit."""

    __slots__ = ("fields", "outcome", "run")

    def __init__(
        self, run: dict[str, Any], fields: dict[str, Any], outcome: AttemptOutcome
    ) -> None:
        self.run, self.fields, self.outcome = run, fields, outcome


def _quiet(ctx: RunnerContext, run: dict[str, Any], outcome: AttemptOutcome, retry: bool) -> bool:
    """Whether an end may wait for the next commit: it is final and nothing goes out for it
    (no heartbeat, no notice: a job's failure may be due one, and so may its success after a
    failure notice). What goes out must not wait for a commit, nor hold up the next run."""
    if retry or run["spec"].get("ping_url"):
        return False
    if run["kind"] != "job":
        return True
    if outcome.status != "success":
        return False
    try:
        state = ctx.store.job_state(run["job_name"])
    except StorageError:
        return False  # written the usual way, which says what is wrong
    return not (state and state.get("notified"))


def write_ended(ctx: RunnerContext, ended: Ended) -> dict[str, Any] | None:
    """An end taken by ``defer``, within the caller's transaction: its row and its job's state
    (returned, for ``notices.run_finished`` once committed)."""
    run, fields = ended.run, ended.fields
    ctx.store.update_run(run["run_id"], **fields)
    if run["kind"] != "job":
        return None
    return update_job_state(
        ctx, run["job_name"], fields["attempt_status"], ended.outcome.started_at, fields["error"]
    )


def _journal(
    ctx: RunnerContext, record: dict[str, Any], started_at: float, *, waiting: bool = True
) -> StorageError | None:
    """Write the attempt's JSONL line, after any a full disk kept back (so the file stays
    nearly in the order attempts ended; ``waiting=False``: the caller appends them later, off
    the path between two runs); the error when it cannot be written."""
    if waiting:
        write_waiting_results(ctx)
    try:
        append_result(ctx.layout, record, started_at)
    except StorageError as exc:
        return exc
    return None


def append_or_keep(ctx: RunnerContext, record: dict[str, Any], started_at: float) -> None:
    """Append a line that ends no attempt (a skip, a cancel); when it cannot be written, keep
    it in the store for later and raise the error, saying so."""
    ctx.store.keep_result(record)
    try:
        append_result(ctx.layout, record, started_at)
    except StorageError as exc:
        try:
            ctx.store.remember_unwritten(record.get("run_id"), started_at, record)
        except StorageError:
            raise exc from None  # the store shares the full disk: the line is lost
        raise kept_for_later(exc) from None


def kept_for_later(exc: StorageError) -> StorageError:
    return StorageError(
        f"{exc}; the result line is kept in the state database and appended by the next "
        "run once the file can be written"
    )


_warned: set[str] = set()  # what a long-running process already said about waiting lines


def write_waiting_results(ctx: RunnerContext) -> None:
    """Append the lines a full disk kept back, if any. A failure is logged (once per process
    and reason) and never raised: the disk may still be full, and the lines keep waiting; and
    the line of the attempt that ends now must not wait for them."""
    try:
        if not ctx.store.has_unwritten():
            return
        from batch_runner.state.journal import write_waiting  # rare: off run-job's usual path

        count = write_waiting(ctx.store, ctx.layout)
    except StorageError as exc:
        if str(exc) not in _warned:
            _warned.add(str(exc))
            log.warning("%s; the result lines kept back wait for the next try", exc)
        return
    if count:
        log.info("appended %d result line(s) kept back when they could not be written", count)


def _ended_fields(
    run: dict[str, Any], outcome: AttemptOutcome, retry_interrupted: bool = False
) -> tuple[dict[str, Any], bool]:
    """The run's row after this attempt, and whether another attempt follows."""
    retryable = outcome.status in FAILED_STATUSES or (
        retry_interrupted and outcome.status == "interrupted"
    )
    retry = retryable and run["attempt"] < run["max_attempts"] and not run.get("stop_requested")
    fields: dict[str, Any] = {
        "status": "pending" if retry else outcome.status,
        "attempt_status": outcome.status,
        "ended_at": outcome.ended_at,
        "exit_code": outcome.exit_code,
        "error": outcome.error,
        "output_tail": outcome.output,
        "output_truncated": int(outcome.output_truncated),
        "pgid": outcome.pid,
        "log_file": run.get("log_file"),
    }
    if retry:
        fields["due_at"] = outcome.ended_at + retry_delay(run["spec"], run["attempt"])
    if run.get("reserved"):
        # Started from a reservation and over before its row said so (runs.handoff).
        fields.update(attempt=run["attempt"], started_at=run["started_at"], reserved_at=None)
    return fields, retry


def _record_end(
    ctx: RunnerContext,
    run: dict[str, Any],
    fields: dict[str, Any],
    retry: bool,
    started_at: float,
    claim_next: Callable[[], dict[str, Any] | None] | None,
    unwritten: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One transaction: the run's row, its job's state, its line if the JSONL did not take
    it (and in a cluster's database: ``record``), the next claim; (state, claimed).

    Whatever fails with a claim in it (the claim, the state), this run's end is written again
    on its own.
    """
    store = ctx.store
    try:
        with store.transaction():
            store.update_run(run["run_id"], **fields)
            if record is not None:
                store.keep_result(record)
            if unwritten is not None:
                store.remember_unwritten(run["run_id"], started_at, unwritten)
            state = None
            if not retry and run["kind"] == "job":
                state = update_job_state(
                    ctx, run["job_name"], fields["attempt_status"], started_at, fields["error"]
                )
            return state, claim_next() if claim_next is not None else None
    except Exception:
        if claim_next is None:
            raise
        return _record_end(ctx, run, fields, retry, started_at, None, unwritten, record)


# How long an attempt's end waits for a cluster's database that went away, trying again with
# these pauses; then the end is given up, and the sweep settles the run once the database is
# back (interrupted, retried per max_attempts).
END_WAIT_SECONDS = 600.0
END_RETRY_PAUSES = (0.2, 0.5, 1.0, 2.0, 5.0)
# Set when this process shuts down past its grace: the ends still waiting give up at once (their
# lines are in this host's JSONL, from which this host's next sweep records them).
ENDS_GIVE_UP = threading.Event()


def _record_end_when_back(
    ctx: RunnerContext,
    first: BackendUnavailable,
    record_end: Callable[[], tuple[dict[str, Any] | None, dict[str, Any] | None]],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    log.warning("%s; the end of the run waits for it", first)
    deadline = time.monotonic() + END_WAIT_SECONDS
    tries = 0
    while True:
        if ENDS_GIVE_UP.wait(END_RETRY_PAUSES[min(tries, len(END_RETRY_PAUSES) - 1)]):
            raise first
        tries += 1
        try:
            return record_end()
        except BackendUnavailable:
            if time.monotonic() >= deadline:
                raise


def update_job_state(
    ctx: RunnerContext, job_name: str, status: str, started_at: float, error: str | None = None
) -> dict[str, Any]:
    """last_run, last_status and the consecutive-failure count of a job after a finished run
    (``error``: its reason); the failure that reaches the job's ``disable_after`` disables it."""
    state = ctx.store.job_state(job_name) or seed_job_state(ctx, job_name)
    if status in FAILED_STATUSES:
        state["error_count"] = int(state.get("error_count") or 0) + 1
    elif status == "success":
        state["error_count"] = 0
    state["last_run"] = iso(started_at)
    state["last_status"] = status
    reason = disable_reason(ctx.config.job(job_name), state, status, error)
    if reason is not None:
        # The failure notice goes out again, saying so, though one went out at notify_after:
        # a job taken off the schedule needs someone to act.
        state["notified"] = 0
    ctx.store.save_job_state(state)
    if reason is not None:
        state["disabled_reason"], state["disabled_at"] = reason, time.time()
        ctx.store.disable_job(job_name, reason, state["disabled_at"])
    return state


def seed_job_state(ctx: RunnerContext, job_name: str) -> dict[str, Any]:
    """A job the database has not seen starts from the values in the config file (SPEC 3)."""
    job = ctx.config.job(job_name)
    return {
        "job_name": job_name,
        "last_run": job.last_run if job else None,
        "last_status": job.last_status if job else None,
        "error_count": job.error_count if job else 0,
    }
