"""A schedule in words, for ``list``: "every 15 minutes", "every Sunday at 03:30"."""

from __future__ import annotations

from datetime import time

from batch_runner.schedules.kinds import DAY_NAMES, DailySchedule, IntervalSchedule, Schedule


def describe(schedule: Schedule) -> str:
    """The schedule in words: "every 15 minutes", "every Sunday at 03:30"."""
    if isinstance(schedule, IntervalSchedule):
        return f"every {_describe_seconds(schedule.seconds)}"
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
