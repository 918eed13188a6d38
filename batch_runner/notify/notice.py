"""What a notice says: a plain JSON object every notifier sends as is, plus a human ``text``.

Kinds: ``failure`` (the job's consecutive failed runs reached ``notify_after``, or its
``disable_after``), ``recovery`` (the first success after a failure notice), ``test``
(``batch_runner notify-test``; no job). ``disabled`` says whether the job is off the schedule
for its failures, ``disabled_reason`` why.
"""

from __future__ import annotations

from typing import Any, Literal

from batch_runner.logs import get_logger
from batch_runner.timefmt import iso

log = get_logger("batch_runner")

NoticeKind = Literal["failure", "recovery", "test"]
# A notice is read by people and chat apps: the start and the end of a long stderr tail is noise.
ERROR_MAX_CHARS = 2000


def build_notice(
    kind: NoticeKind, run: dict[str, Any], outcome: Any, state: dict[str, Any], host: str
) -> dict[str, Any]:
    """The notice about a job whose run just ended; ``outcome`` is its last attempt's."""
    error = outcome.error
    if error and len(error) > ERROR_MAX_CHARS:
        error = error[:ERROR_MAX_CHARS] + "…"
    notice = {
        "kind": kind,
        "job_name": run["job_name"],
        "error_count": state.get("error_count", 0),
        "notify_after": run["spec"].get("notify_after"),
        "status": outcome.status,
        "error": error,
        "exit_code": outcome.exit_code,
        "start_time": iso(outcome.started_at),
        "end_time": iso(outcome.ended_at),
        "run_id": run["run_id"],
        "attempt": run.get("attempt"),
        "max_attempts": run.get("max_attempts"),
        "host": host,
        "log_file": run.get("log_file"),
        "disabled": state.get("disabled_at") is not None,
        "disabled_reason": state.get("disabled_reason"),
    }
    notice["text"] = notice_text(notice)
    return notice


def build_test_notice(host: str, config_path: str, now: float) -> dict[str, Any]:
    """What ``notify-test`` sends: the shape of a real notice, with no job behind it."""
    notice: dict[str, Any] = {
        "kind": "test",
        "job_name": None,
        "error_count": 0,
        "notify_after": None,
        "status": None,
        "error": None,
        "exit_code": None,
        "start_time": iso(now),
        "end_time": iso(now),
        "run_id": None,
        "attempt": None,
        "max_attempts": None,
        "host": host,
        "log_file": None,
        "disabled": False,
        "disabled_reason": None,
        "config": config_path,
    }
    notice["text"] = notice_text(notice)
    return notice


def notice_text(notice: dict[str, Any]) -> str:
    """One line a person understands at a glance (chat webhooks show only this)."""
    job, host = notice["job_name"], notice["host"]
    if notice["kind"] == "test":
        return (
            f"batch_runner on {host}: test notice (notify-test, config "
            f"{notice.get('config')}); this notifier works"
        )
    log_file = f"; log: {notice['log_file']}" if notice.get("log_file") else ""
    if notice["kind"] == "recovery":
        return (
            f"batch_runner on {host}: job {job} recovered: run {notice['run_id']} "
            f"succeeded at {notice['end_time']}{_disabled(notice)}{log_file}"
        )
    count = notice["error_count"]
    in_a_row = f" ({count} runs in a row)" if count > 1 else ""
    reason = (notice.get("error") or notice["status"]).splitlines()[0]
    return (
        f"batch_runner on {host}: job {job} failed{in_a_row}; last run {notice['run_id']} "
        f"ended {notice['status']} at {notice['end_time']}: {reason}{_disabled(notice)}{log_file}"
    )


def _disabled(notice: dict[str, Any]) -> str:
    if not notice.get("disabled"):
        return ""
    job = notice["job_name"]
    return (
        f"; {notice['disabled_reason']}: the scheduler no longer queues it until "
        f"`batch_runner enable {job}`"
    )


def notice_subject(notice: dict[str, Any]) -> str:
    """A short title for an email."""
    job, host = notice["job_name"], notice["host"]
    if notice["kind"] == "test":
        return f"[batch_runner] test notice from {host}"
    if notice["kind"] == "recovery":
        return f"[batch_runner] {job} recovered on {host}"
    disabled = ", disabled" if notice.get("disabled") else ""
    return f"[batch_runner] {job} failed {notice['error_count']} times in a row on {host}{disabled}"


def log_notice(notice: dict[str, Any]) -> None:
    """Every notice also goes to the runner's log: the one place that works without notifiers."""
    # The notice threshold is an error: the job has failed notify_after times in a row.
    emit = log.error if notice["kind"] == "failure" else log.info
    emit("notice: %s", notice["text"])
