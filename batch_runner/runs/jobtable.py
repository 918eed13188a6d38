"""The config's jobs as the CLI and the service show them: schedule in words, next and last
run, error count, a disable by failures; and switching one on again."""

from __future__ import annotations

import time
from datetime import datetime

from batch_runner.config.spec import ConfigSpec, JobSpec

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def job_rows(
    config: ConfigSpec, states: dict[str, dict[str, Any]], now: float, *, scheduler_alive: bool
) -> list[dict[str, Any]]:
    rows = []
    for job in config.jobs:
        state = states.get(job.name) or {}
        disabled = state.get("disabled_at") is not None
        rows.append(
            {
                "name": job.name,
                "enabled": job.enabled,
                "schedule_type": job.schedule_type,
                "schedule_time": job.schedule_time,
                "last_run": state.get("last_run", job.last_run),
                "last_status": state.get("last_status", job.last_status),
                "error_count": state.get("error_count", job.error_count),
                # None for a job its failures disabled: the scheduler queues none of its runs.
                "next_run": None if disabled else next_run_of(job, state, now, scheduler_alive),
                # Only with lanes: without, the rows are what they were (SPEC 9).
                **({"lane": job.lane} if config.settings.has_lanes else {}),
                # Only on a job its failures disabled (`enabled` stays the file's value).
                **(
                    {"disabled_reason": state["disabled_reason"], "disabled_at": _at(state)}
                    if disabled
                    else {}
                ),
            }
        )
    return rows


def _at(state: dict[str, Any]) -> str:
    from batch_runner.timefmt import iso

    return iso(float(state["disabled_at"]))


def next_run_of(job: JobSpec, state: dict[str, Any], now: float, live: bool) -> str | None:
    """Daily, weekly and cron times are computed; an interval's next run is the live
    scheduler's; a startup job has none (it runs when a scheduler starts)."""
    if not job.enabled or job.schedule_type == "startup":
        return None
    from batch_runner import schedules

    schedule = schedules.parse_schedule(job.schedule_type, job.schedule_time)
    if isinstance(schedule, schedules.IntervalSchedule):
        return state.get("next_run") if live else None
    tz = schedules.resolve_tz(job.timezone)
    after = datetime.fromtimestamp(now, tz)
    return schedules.next_run(schedule, after, tz).isoformat()


# Schedules that do not read a wall clock: their words name no zone.
_NO_CLOCK = ("interval", "startup")


def describe_job(job: JobSpec, now: float | None = None) -> str:
    """The schedule in words, with the job's zone where its clock is not the system's."""
    from batch_runner import schedules

    words = schedules.describe(schedules.parse_schedule(job.schedule_type, job.schedule_time))
    zone = own_zone(job, time.time() if now is None else now)
    return f"{words} {zone}" if zone and job.schedule_type not in _NO_CLOCK else words


def own_zone(job: JobSpec, now: float) -> str | None:
    """The job's time zone name when its clock differs from the system's, else None."""
    if job.timezone is None:
        return None
    from batch_runner import schedules

    own, system = schedules.resolve_tz(job.timezone), schedules.resolve_tz(None)
    # Now and half a year on: zones that differ only in summer (Berlin, Lagos) differ.
    instants = [datetime.fromtimestamp(now + offset, own) for offset in (0, 183 * 86400)]
    same = all(t.utcoffset() == t.astimezone(system).utcoffset() for t in instants)
    return None if same else job.timezone


def enable_job(config: ConfigSpec, name: str) -> tuple[bool, dict[str, Any] | None]:
    """Switch a job on in the file (unless it is on there already and only its failures
    disabled it: the file is then left as it is) and clear a disable by its failures.

    Returns whether the file was edited, and the job's state as its failures had disabled
    it (None if they had not). ``name`` must be a job of ``config``.
    """
    from batch_runner.config import edit

    job = config.job(name)
    assert job is not None
    edited = False
    if not job.enabled:  # the file first: should its edit fail, nothing is cleared
        edit.set_enabled(config.path, config.root, job.name, True)
        edited = True
    cleared = _clear_failures(config, job.name)
    if cleared is None and job.enabled:
        edit.set_enabled(config.path, config.root, job.name, True)  # as ever: on already, said so
        edited = True
    return edited, cleared


def _clear_failures(config: ConfigSpec, name: str) -> dict[str, Any] | None:
    """The job's state as its failures had disabled it, now cleared; None if they had not."""
    from batch_runner.state.layout import LogLayout
    from batch_runner.state.store import open_existing_store

    store = open_existing_store(LogLayout(config.settings.log_dir), config.settings.backend)
    if store is None:
        return None  # nothing ever ran: nothing to clear
    try:
        return store.enable_job(name)
    finally:
        store.close()
