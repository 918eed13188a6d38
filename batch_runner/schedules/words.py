"""A schedule in words, for ``list``: "every 15 minutes", "every Sunday at 03:30"."""

from __future__ import annotations

from datetime import time

from batch_runner.schedules.kinds import (
    DAY_NAMES,
    CronSchedule,
    DailySchedule,
    IntervalSchedule,
    Schedule,
    StartupSchedule,
    WeeklySchedule,
)

_WEEKDAYS = frozenset(range(5))


def describe(schedule: Schedule) -> str:
    """The schedule in words: "every 15 minutes", "every Sunday at 03:30"."""
    if isinstance(schedule, IntervalSchedule):
        return f"every {_describe_seconds(schedule.seconds)}"
    if isinstance(schedule, StartupSchedule):
        return "at scheduler start"
    if isinstance(schedule, CronSchedule):
        return _describe_cron(schedule)
    at = _describe_time(schedule.at)
    if isinstance(schedule, DailySchedule) or len(schedule.days) == 7:
        return f"every day at {at}"
    names = [DAY_NAMES[d].capitalize() for d in sorted(schedule.days)]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"every {listed} at {at}"


def _describe_seconds(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds:g} seconds"


def _describe_time(at: time) -> str:
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")


def _describe_cron(schedule: CronSchedule) -> str:
    """Words for one time a day on some days of the week; else the expression as written."""
    minute, hour, day, month, _ = schedule.fields
    simple = minute.isdigit() and hour.isdigit() and day == "*" and month == "*"
    if not simple or schedule.expression.startswith("@"):
        return f"cron {schedule.expression}"
    if schedule.weekdays == _WEEKDAYS:
        return f"every weekday at {_describe_time(schedule.times[0])}"
    return describe(WeeklySchedule(schedule.weekdays, schedule.times[0]))
