"""``disable_after``: a job whose failed runs in a row reach it is taken off the schedule.

The state holds it (``job_state.disabled_reason``, ``disabled_at``), never the config file: the
failure that reaches the count disables the job (``runs.finish.update_job_state``), the
scheduler's occurrences of it are not queued from then on (``runs.enqueue``), and
``enable NAME`` clears it (``Store.enable_job``). A run the operator asks for (``run-job``,
with or without ``--queue``) still runs, as it does for a job disabled in the file.
"""

from __future__ import annotations

from batch_runner.logs import get_logger

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.config.spec import JobSpec
    from batch_runner.runs.context import RunnerContext

log = get_logger("batch_runner")

# As finish.FAILED_STATUSES (not imported from there: finish imports this module).
_FAILED = ("error", "timeout")
# The triggers of runs someone asked for: they run whatever the job's failures.
ASKED_FOR = ("manual", "queue")
REASON_MAX_CHARS = 200

_said: set[tuple[str, float]] = set()  # (job, disabled_at) this process has logged


def disable_reason(
    job: JobSpec | None, state: dict[str, Any], status: str, error: str | None
) -> str | None:
    """Why the run that just ended (``status``, ``error``; ``state`` counted after it) takes
    ``job`` off the schedule; None when it does not, or the job is off it already.

    ``>=``, not ``==``: a threshold lowered by a reload, or a disable lost with a crash between
    two writes, takes effect at the next failure.
    """
    if status not in _FAILED or state.get("disabled_at") is not None:
        return None
    limit = job.disable_after if job is not None else None
    count = int(state.get("error_count") or 0)
    if limit is None or count < limit:
        return None
    lines = (error or "").strip().splitlines()
    last = lines[0][:REASON_MAX_CHARS] if lines else status
    return f"disabled after {count} consecutive failed runs (last: {last})"


def notify_after_of(job: JobSpec) -> int:
    """The failure count at which the job's failure notice goes out: never after the failure
    that disables it, so that no job leaves the schedule without a notice."""
    if job.disable_after is None:
        return job.notify_after
    return min(job.notify_after, job.disable_after)


def held_back(ctx: RunnerContext, job: JobSpec, trigger: str) -> bool:
    """Whether a run of ``job`` with ``trigger`` is not queued for the job's failures; the
    scheduler's log says so once per disable, not at every occurrence."""
    # Whatever the job's disable_after says now: taking it out of the file does not put a
    # disabled job back on the schedule, `enable NAME` does.
    if trigger in ASKED_FOR:
        return False
    state = ctx.store.job_state(job.name)
    if not state or state.get("disabled_at") is None:
        return False
    said = (job.name, float(state["disabled_at"]))
    if said not in _said:
        _said.add(said)
        log.warning(
            "%s is not scheduled: %s; `batch_runner enable %s` schedules it again",
            job.name,
            state.get("disabled_reason"),
            job.name,
        )
    return True


def failures_in_words(state: dict[str, Any]) -> str:
    """``5 failures``: how a list or a status line names a job's disable."""
    count = int(state.get("error_count") or 0)
    if count < 1:
        return "earlier failures"  # a manual run has succeeded since: still disabled
    return f"{count} failure{'s' if count != 1 else ''}"
