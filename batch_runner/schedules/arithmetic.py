"""The next occurrence of a schedule after an instant: pure functions, no clock.

Daylight saving, as the SPEC wants it: a wall-clock time that does not exist on a day (the
spring-forward gap) runs at the first instant after the gap; a time that occurs twice (fall
back) runs once, at its first occurrence. Aware datetimes that share a tzinfo compare and
subtract by wall time, ignoring the offset, so every comparison and sum below is done in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from batch_runner.schedules.kinds import DailySchedule, IntervalSchedule, Schedule, WeeklySchedule


def next_fire(schedule: DailySchedule | WeeklySchedule, after: datetime, tz: tzinfo) -> datetime:
    """The first occurrence strictly after ``after`` (aware, any zone), aware in ``tz``.

    Compare results across zones with ``<``/``>`` or after ``astimezone(UTC)``: Python's ``==``
    is always False between zones for a time in a repeated hour (PEP 495).
    """
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
    return next_fire(schedule, after, tz)


def upcoming(
    schedule: Schedule,
    after: datetime,
    tz: tzinfo,
    count: int,
    anchor: datetime | None = None,
) -> list[datetime]:
    """The next ``count`` occurrences after ``after``, in order."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    anchor = anchor or after
    fires: list[datetime] = []
    for _ in range(count):
        after = next_run(schedule, after, tz, anchor)
        fires.append(after)
    return fires


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
