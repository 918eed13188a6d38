"""The next occurrence of a schedule after an instant: pure functions, no clock.

Daylight saving, as the SPEC wants it: a wall-clock time that does not exist on a day (the
spring-forward gap) runs at the first instant after the gap; a time that occurs twice (fall
back) runs once, at its first occurrence. Aware datetimes that share a tzinfo compare and
subtract by wall time, ignoring the offset, so every comparison and sum below is done in UTC.

A cron expression follows the same policy, time by time: each wall time it names runs once.
Several times in a gap run once, together, just after it; a job every 10 minutes runs through
the first pass of a repeated hour and not the second, so it pauses 70 minutes of real time
(40 on Lord Howe Island's half-hour shift). cron itself, and cronsim, run such a job at both
passes; the rule here is the one daily and weekly jobs follow, and no wall time runs twice.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from batch_runner.schedules.kinds import (
    CronSchedule,
    DailySchedule,
    IntervalSchedule,
    Schedule,
    StartupSchedule,
    WeeklySchedule,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# cronsim gives up after 50 years too; any possible expression fires within 28.
_CRON_YEARS = 50


def next_fire(
    schedule: DailySchedule | WeeklySchedule | CronSchedule, after: datetime, tz: tzinfo
) -> datetime:
    """The first occurrence strictly after ``after`` (aware, any zone), aware in ``tz``.

    Compare results across zones with ``<``/``>`` or after ``astimezone(UTC)``: Python's ``==``
    is always False between zones for a time in a repeated hour (PEP 495).
    """
    if isinstance(schedule, CronSchedule):
        return next_cron_fire(schedule, after, tz)
    after_utc = _to_utc(after, "after")
    # Start a day early: an occurrence belongs to its local date, and `after` may lie in any zone.
    day = after_utc.astimezone(tz).date() - timedelta(days=1)
    for _ in range(9):  # a weekly schedule has an occurrence in any 7 consecutive days
        if isinstance(schedule, DailySchedule) or day.weekday() in schedule.days:
            fire = wall_to_utc(day, schedule.at, tz)
            if fire > after_utc:
                return fire.astimezone(tz)
        day += timedelta(days=1)
    raise ValueError(f"{schedule!r} has no occurrence in the week after {after.isoformat()}")


def next_interval_fire(seconds: float, anchor: datetime, after: datetime) -> datetime:
    """The first ``anchor + k * seconds`` (k >= 1) strictly after ``after``, in anchor's zone.

    Counting whole periods from a fixed anchor keeps runs start to start with no drift,
    however late each run starts or however long it takes.
    """
    period = timedelta(seconds=seconds)
    if period <= timedelta(0):
        raise ValueError(f"interval must be at least one microsecond, not {seconds!r} seconds")
    anchor_utc = _to_utc(anchor, "anchor")
    periods = (_to_utc(after, "after") - anchor_utc) // period  # exact: whole microseconds
    return (anchor_utc + max(periods + 1, 1) * period).astimezone(anchor.tzinfo)


def next_run(
    schedule: Schedule, after: datetime, tz: tzinfo, anchor: datetime | None = None
) -> datetime:
    """The next occurrence of any schedule; an interval counts from ``anchor`` (else ``after``)."""
    if isinstance(schedule, IntervalSchedule):
        return next_interval_fire(schedule.seconds, anchor or after, after)
    if isinstance(schedule, StartupSchedule):
        raise ValueError(
            "a startup schedule has no next occurrence: the scheduler runs a startup job itself, "
            "once each time it starts"
        )
    return next_fire(schedule, after, tz)


def next_cron_fire(schedule: CronSchedule, after: datetime, tz: tzinfo) -> datetime:
    """The first time of a cron expression strictly after ``after``, aware in ``tz``.

    Days are visited month by month and times found by bisection, never minute by minute:
    wall_to_utc never decreases as the wall time grows, so the times of one day are in order.
    """
    after_utc = _to_utc(after, "after")
    # A day early, as for daily: a time at the end of a gap can land on the next date.
    start = after_utc.astimezone(tz).date() - timedelta(days=1)
    # Not past 9998: the last date Python's calendar holds is in 9999 (a yearly job asked for
    # 100,000 next runs by `next` gets there).
    for day in _cron_days(schedule, start, min(start.year + _CRON_YEARS, 9998)):
        fire = _first_time_after(schedule.times, day, tz, after_utc)
        if fire is not None:
            return fire.astimezone(tz)
    raise ValueError(f"cron {schedule.expression!r} has no occurrence in {_CRON_YEARS} years")


def _cron_days(schedule: CronSchedule, start: date, last_year: int) -> Iterator[date]:
    year, month, first = start.year, start.month, start.day
    while year <= last_year:
        if month in schedule.months:
            # calendar.monthrange, without importing calendar (and locale) on `list`'s path
            weekday = date(year, month, 1).weekday()
            length = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
            for day in range(first, length + 1):
                in_month = day in schedule.days
                in_week = (weekday + day - 1) % 7 in schedule.weekdays
                if (in_month or in_week) if schedule.either_day else (in_month and in_week):
                    yield date(year, month, day)
        year, month, first = (year + 1, 1, 1) if month == 12 else (year, month + 1, 1)


def _first_time_after(
    times: tuple[time, ...], day: date, tz: tzinfo, after_utc: datetime
) -> datetime | None:
    first = wall_to_utc(day, times[0], tz)
    if first > after_utc:
        return first
    if wall_to_utc(day, times[-1], tz) <= after_utc:
        return None
    low, high = 0, len(times) - 1  # times[low] is not after `after`, times[high] is
    while high - low > 1:
        middle = (low + high) // 2
        if wall_to_utc(day, times[middle], tz) > after_utc:
            high = middle
        else:
            low = middle
    return wall_to_utc(day, times[high], tz)


def upcoming(
    schedule: Schedule,
    after: datetime,
    tz: tzinfo,
    count: int,
    anchor: datetime | None = None,
) -> list[datetime]:
    """The next ``count`` occurrences after ``after``, in order (fewer only where the calendar
    ends, in the year 9999)."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    return list(itertools.islice(occurrences(schedule, after, tz, anchor), count))


def occurrences(
    schedule: Schedule, after: datetime, tz: tzinfo, anchor: datetime | None = None
) -> Iterator[datetime]:
    """The occurrences after ``after``, one by one, for as long as they are asked for; none
    past the last date there is (the year 9999)."""
    anchor = anchor or after
    while True:
        try:
            after = next_run(schedule, after, tz, anchor)
        except (ValueError, OverflowError):
            return
        yield after


def wall_to_utc(day: date, at: time, tz: tzinfo) -> datetime:
    """The instant (in UTC) when the wall clock in ``tz`` shows ``at`` on ``day``.

    A time in a spring-forward gap gives the first instant after the gap; a time shown
    twice gives its first occurrence (fold=0).
    """
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # The round trip shows the wall time again only if it exists; in a gap it lands elsewhere.
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=1 reads the wall time with the offset after the transition, which gives an
    # instant before the gap, and fold=0 one after it; the transition lies between the two.
    before_gap = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _first_instant_with_offset(before_gap, first, tz, first.astimezone(tz).utcoffset())


def _first_instant_with_offset(
    low: datetime, high: datetime, tz: tzinfo, offset: timedelta | None
) -> datetime:
    # Bisect to the microsecond: tzinfo offers no portable way to ask for its transitions.
    step = timedelta(microseconds=1)
    while high - low > step:
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high


def _to_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {moment.isoformat()}")
    return moment.astimezone(UTC)
