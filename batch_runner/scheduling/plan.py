"""When the scheduler fires each job: pure functions of (job, now, what the store remembers).

No clock reads, no randomness of their own: the scheduler passes ``now`` and a uniform random
number, so every rule here (catch-up, jitter, no replay of missed occurrences, start-to-start
intervals) is tested at any instant.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

from batch_runner import schedules
from batch_runner.config.spec import JobSpec
from batch_runner.timefmt import iso, parse_iso

# `next` imports this module; these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator
    from typing import Any

    from batch_runner.config.spec import ConfigSpec

# An occurrence this far in the past when planned was missed (suspend, clock jump, overload):
# it is not replayed, the next one after now is planned instead.
MISSED_AFTER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One planned firing of a job."""

    job_name: str
    scheduled_for: float  # the occurrence itself (epoch seconds)
    due: float  # when to fire: the occurrence plus its jitter
    trigger: str  # "schedule" (a startup job's too) or "catch_up"
    anchor: float  # an interval's counting origin: occurrences are anchor + k * seconds


def whole_ms(ts: float) -> float:
    """``ts`` rounded up to a whole millisecond: the precision a run's ``scheduled_for`` is
    recorded with, so the recorded time is the instant the run was due, not up to 1 ms before.

    Rounded to whole microseconds first, as a datetime holds it, so float noise on a time that
    is a whole millisecond already never moves it up by one.
    """
    micros = round(ts * 1_000_000)
    return -(-micros // 1000) / 1000


def is_startup(job: JobSpec) -> bool:
    """A startup job runs once each time the scheduler starts, and has no other occurrence."""
    return job.schedule_type == "startup"


def startup_occurrence(job: JobSpec, now: float) -> Occurrence:
    """A startup job's run as the scheduler starts: due at once, without jitter (it runs
    before anything else), and never a catch-up (it misses nothing)."""
    at = whole_ms(now)
    return Occurrence(job.name, at, at, "schedule", at)


def _occurrence(job: JobSpec, at: float, due: float, trigger: str, anchor: float) -> Occurrence:
    return Occurrence(job.name, whole_ms(at), whole_ms(due), trigger, anchor)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _next_after(job: JobSpec, after: float, anchor: float) -> float:
    schedule = schedules.parse_schedule(job.schedule_type, job.schedule_time)
    # An interval has no time zone; looking up the local one costs more than the arithmetic.
    tz = (
        UTC
        if isinstance(schedule, schedules.IntervalSchedule)
        else schedules.resolve_tz(job.timezone)
    )
    return schedules.next_run(schedule, _utc(after), tz, _utc(anchor)).timestamp()


def _interval_seconds(job: JobSpec) -> float | None:
    schedule = schedules.parse_schedule(job.schedule_type, job.schedule_time)
    return schedule.seconds if isinstance(schedule, schedules.IntervalSchedule) else None


def interval_of(job: JobSpec) -> float | None:
    """An interval job's seconds; None for every other kind of schedule."""
    return None if is_startup(job) else _interval_seconds(job)


def on_chain(job: JobSpec, anchor: float, now: float, unit_random: float) -> Occurrence:
    """An interval job's next occurrence counted from ``anchor``, an occurrence decided
    elsewhere (a cluster's other scheduler): the first after ``now`` on that grid."""
    decided = Occurrence(job.name, anchor, anchor, "schedule", anchor)
    return following_occurrence(job, decided, now, unit_random)


def _with_jitter(job: JobSpec, at: float, unit_random: float) -> float:
    return at + job.jitter * unit_random


def first_occurrence(
    job: JobSpec,
    now: float,
    unit_random: float,
    *,
    stored_next: float | None = None,
    last_run: float | None = None,
) -> Occurrence:
    """The first firing after the scheduler starts.

    With ``catch_up``, one run at start-up when an occurrence passed while no scheduler ran:
    the occurrence the last scheduler planned (``stored_next``) is past, or, lacking that, one
    fell between the job's last run and now. An interval job with ``catch_up`` that never ran
    starts at once. Otherwise daily and weekly jobs wait for their next time, and interval jobs
    run N seconds after start.
    """
    origin = whole_ms(now)  # an interval's grid on whole milliseconds, like what is recorded
    if job.catch_up and _missed_while_down(job, now, stored_next, last_run):
        return _occurrence(job, stored_next or origin, origin, "catch_up", origin)
    at = _next_after(job, now, origin)
    return _occurrence(job, at, _with_jitter(job, at, unit_random), "schedule", origin)


def first_plans(
    jobs: Iterable[JobSpec],
    now: float,
    rand: Callable[[], float],
    states: dict[str, dict[str, Any]] | None,
) -> list[Occurrence]:
    """Every enabled job's first occurrence, in the order to queue them when due together.

    ``states`` (what the store remembers of each job) at a scheduler start: each startup job
    runs then, first. None for a replan, which runs none.
    """
    enabled = [job for job in jobs if job.enabled]
    plans = [] if states is None else [startup_occurrence(j, now) for j in enabled if is_startup(j)]
    for job in enabled:
        if is_startup(job):
            continue
        stored_next = last_run = None
        if states is not None:
            state = states.get(job.name) or {}
            stored_next = _timestamp(state.get("next_run"))
            last_run = _timestamp(state.get("last_run") or job.last_run)
        plans.append(first_occurrence(job, now, rand(), stored_next=stored_next, last_run=last_run))
    return plans


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        return None


def _missed_while_down(
    job: JobSpec, now: float, stored_next: float | None, last_run: float | None
) -> bool:
    if stored_next is not None:
        return stored_next <= now
    if last_run is not None:
        return _next_after(job, last_run, last_run) <= now
    return _interval_seconds(job) is not None


def following_occurrence(
    job: JobSpec, previous: Occurrence, now: float, unit_random: float
) -> Occurrence:
    """The firing after ``previous``: start to start for intervals, never a replay of misses.

    After a catch-up run an interval counts from that run; otherwise from the same anchor, so
    runs do not drift however long each one takes.
    """
    anchor = previous.due if previous.trigger == "catch_up" else previous.anchor
    after = (
        max(previous.scheduled_for, previous.due)
        if previous.trigger == "catch_up"
        else (previous.scheduled_for)
    )
    at = _next_after(job, after, anchor)
    if at < now - MISSED_AFTER_SECONDS:
        at = _next_after(job, now, anchor)
    return _occurrence(job, at, _with_jitter(job, at, unit_random), "schedule", anchor)


@dataclass(frozen=True, slots=True)
class Firing:
    """Firing one occurrence: what its run and the job's plan store, ready to write."""

    occurrence: Occurrence
    following: Occurrence | None  # None: a startup job, which has none
    scheduled_for: str  # the occurrence as its run records it
    next_run: str | None  # the following occurrence as the job's plan remembers it


def firing(job: JobSpec, occurrence: Occurrence, now: float, unit_random: float) -> Firing:
    """Fire ``occurrence`` at ``now``: plan the following one, format both for the store."""
    if is_startup(job):
        return Firing(occurrence, None, iso(occurrence.scheduled_for), None)
    following = following_occurrence(job, occurrence, now, unit_random)
    return Firing(
        occurrence, following, iso(occurrence.scheduled_for), iso(following.scheduled_for)
    )


def replans_after_reload(
    old: ConfigSpec, new: ConfigSpec, planned: Collection[str]
) -> tuple[list[str], list[JobSpec]]:
    """The jobs whose plan a reload drops, and those it plans anew; the others keep theirs.

    Only a scheduler start runs a startup job: one a reload adds, enables or edits waits for
    the next start.
    """
    before = {job.name: job for job in old.jobs}
    kept = {job.name for job in new.jobs}
    drop = [name for name in planned if name not in kept]
    replan = []
    for job in new.jobs:
        changed = replan_for_change(before.get(job.name), job)
        if not job.enabled or (is_startup(job) and changed):
            drop.append(job.name)
        elif not is_startup(job) and (changed or job.name not in planned):
            replan.append(job)
    return drop, replan


def replan_for_change(old: JobSpec | None, new: JobSpec) -> bool:
    """Whether an edited job needs a new plan; unchanged jobs keep their next run time."""
    if old is None:
        return True
    return (old.schedule_type, old.schedule_time, old.timezone, old.jitter, old.enabled) != (
        new.schedule_type,
        new.schedule_time,
        new.timezone,
        new.jitter,
        new.enabled,
    )


def upcoming_runs(job: JobSpec, now: float, count: int, stored_next: float | None) -> list[float]:
    """The next ``count`` occurrences for ``next`` (see ``upcoming_times``)."""
    return list(itertools.islice(upcoming_times(job, now, stored_next), count))


def upcoming_times(job: JobSpec, now: float, stored_next: float | None) -> Iterator[float]:
    """The occurrences to come, one by one, for as long as they are asked for: an interval
    continues the live plan if any; a startup job has none (its run is at the scheduler's next
    start, whenever that is); none past the year 9999."""
    if is_startup(job):
        return
    seconds = _interval_seconds(job)
    if seconds is not None:
        start = stored_next if stored_next and stored_next > now else now + seconds
        yield from (start + k * seconds for k in itertools.count())
        return
    schedule = schedules.parse_schedule(job.schedule_type, job.schedule_time)
    tz = schedules.resolve_tz(job.timezone)
    yield from (at.timestamp() for at in schedules.occurrences(schedule, _utc(now), tz))


def first_runs_in_words(plans: list[Occurrence], now: float, shown: int = 5) -> list[str]:
    """``next: NAME at TIME (in 15 min)`` for the first ``shown`` runs, and how many follow."""
    upcoming = sorted(plans, key=lambda occurrence: occurrence.scheduled_for)
    lines = [
        f"next: {o.job_name} at {iso(o.scheduled_for)[:19].replace('T', ' ')} "
        f"(in {_in_words(max(o.scheduled_for - now, 0.0))})"
        for o in upcoming[:shown]
    ]
    if len(upcoming) > shown:
        lines.append(f"... and {len(upcoming) - shown} more: `batch_runner next` lists them")
    return lines


def _in_words(seconds: float) -> str:
    seconds = round(seconds)  # planned a moment ago: 3599.99 s is "1.0 h"
    if seconds >= 86400:
        return f"{seconds / 86400:.0f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
